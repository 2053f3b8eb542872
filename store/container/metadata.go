package container

import (
	"encoding/json"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/store"
)

// metadataVersion is bumped when the persisted shape of Metadata changes.
const metadataVersion = "v1"

// Metadata is the immutable part of a container: fixed at CreateContainer
// and persisted with the containerd container record, as containerd does.
type Metadata struct {
	ID        string
	Name      string
	SandboxID string
	// Config is the CRI request's config. Treat it as read-only; it is
	// shared by every copy of the Container.
	Config     *runtime.ContainerConfig
	ImageRef   string
	LogPath    string
	StopSignal string
}

// metadataJSON is Metadata with Config as protojson, since encoding/json does
// not know protobuf's field rules (oneofs, int64 as strings, unknown fields).
type metadataJSON struct {
	ID         string
	Name       string
	SandboxID  string
	Config     json.RawMessage `json:",omitempty"`
	ImageRef   string
	LogPath    string
	StopSignal string
}

type versionedMetadata struct {
	Version  string
	Metadata metadataJSON
}

// MarshalJSON encodes the metadata as {"Version":"v1","Metadata":{...}}.
func (m *Metadata) MarshalJSON() ([]byte, error) {
	v := versionedMetadata{
		Version: metadataVersion,
		Metadata: metadataJSON{
			ID:         m.ID,
			Name:       m.Name,
			SandboxID:  m.SandboxID,
			ImageRef:   m.ImageRef,
			LogPath:    m.LogPath,
			StopSignal: m.StopSignal,
		},
	}
	if m.Config != nil {
		cfg, err := store.MarshalProto(m.Config)
		if err != nil {
			return nil, fmt.Errorf("encode config of container %q: %w", m.ID, err)
		}
		v.Metadata.Config = cfg
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes what MarshalJSON wrote; other versions are an error.
func (m *Metadata) UnmarshalJSON(data []byte) error {
	var v versionedMetadata
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("decode container metadata: %w", err)
	}
	if v.Version != metadataVersion {
		return fmt.Errorf("container %q: unsupported metadata version %q", v.Metadata.ID, v.Version)
	}
	*m = Metadata{
		ID:         v.Metadata.ID,
		Name:       v.Metadata.Name,
		SandboxID:  v.Metadata.SandboxID,
		ImageRef:   v.Metadata.ImageRef,
		LogPath:    v.Metadata.LogPath,
		StopSignal: v.Metadata.StopSignal,
	}
	if len(v.Metadata.Config) > 0 && string(v.Metadata.Config) != "null" {
		cfg := &runtime.ContainerConfig{}
		if err := store.UnmarshalProto(v.Metadata.Config, cfg); err != nil {
			return fmt.Errorf("decode config of container %q: %w", v.Metadata.ID, err)
		}
		m.Config = cfg
	}
	return nil
}
