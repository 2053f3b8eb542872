package sandbox

import (
	"encoding/json"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/store"
)

// metadataVersion is bumped when the persisted shape of Metadata changes.
const metadataVersion = "v1"

// Metadata is the part of a sandbox fixed at RunPodSandbox, persisted with
// the containerd sandbox record as containerd does.
type Metadata struct {
	ID   string
	Name string
	// Config is the CRI request's config. Treat it as read-only; it is
	// shared by every copy of the Sandbox.
	Config         *runtime.PodSandboxConfig
	NetNSPath      string
	IP             string
	AdditionalIPs  []string
	RuntimeHandler string
}

// metadataJSON is Metadata with Config as protojson, since encoding/json does
// not know protobuf's field rules.
type metadataJSON struct {
	ID             string
	Name           string
	Config         json.RawMessage `json:",omitempty"`
	NetNSPath      string
	IP             string
	AdditionalIPs  []string
	RuntimeHandler string
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
			ID:             m.ID,
			Name:           m.Name,
			NetNSPath:      m.NetNSPath,
			IP:             m.IP,
			AdditionalIPs:  m.AdditionalIPs,
			RuntimeHandler: m.RuntimeHandler,
		},
	}
	if m.Config != nil {
		cfg, err := store.MarshalProto(m.Config)
		if err != nil {
			return nil, fmt.Errorf("encode config of sandbox %q: %w", m.ID, err)
		}
		v.Metadata.Config = cfg
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes what MarshalJSON wrote; other versions are an error.
func (m *Metadata) UnmarshalJSON(data []byte) error {
	var v versionedMetadata
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("decode sandbox metadata: %w", err)
	}
	if v.Version != metadataVersion {
		return fmt.Errorf("sandbox %q: unsupported metadata version %q", v.Metadata.ID, v.Version)
	}
	*m = Metadata{
		ID:             v.Metadata.ID,
		Name:           v.Metadata.Name,
		NetNSPath:      v.Metadata.NetNSPath,
		IP:             v.Metadata.IP,
		AdditionalIPs:  v.Metadata.AdditionalIPs,
		RuntimeHandler: v.Metadata.RuntimeHandler,
	}
	if len(v.Metadata.Config) > 0 && string(v.Metadata.Config) != "null" {
		cfg := &runtime.PodSandboxConfig{}
		if err := store.UnmarshalProto(v.Metadata.Config, cfg); err != nil {
			return fmt.Errorf("decode config of sandbox %q: %w", v.Metadata.ID, err)
		}
		m.Config = cfg
	}
	return nil
}
