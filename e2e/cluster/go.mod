module github.com/fakecontainerd/fakecontainerd/e2e/cluster

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	google.golang.org/grpc v1.85.0
	k8s.io/cri-api v0.36.3
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)

require (
	github.com/fakecontainerd/fakecontainerd/e2e/kubelet v0.0.0
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/fakecontainerd/fakecontainerd/e2e/kubelet => ../kubelet
