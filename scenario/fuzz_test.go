package scenario

import (
	"testing"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

// maxFuzzPods bounds the pods a fuzzed file may ask for before its plans
// are built: Validate puts no ceiling on replicas, and a plan holds every
// pod, so a fuzzed "replicas = 1e12" would only measure memory.
const maxFuzzPods = 10_000

// FuzzParse feeds arbitrary files to Parse. It must never panic; what it
// accepts must validate again, and every variant must plan without
// panicking, with the pods the file asks for.
func FuzzParse(f *testing.F) {
	for _, name := range configs.ScenarioNames() {
		data, err := configs.ScenarioFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(""))
	f.Add([]byte("name = \"x\"\nduration = \"1s\"\n"))
	f.Add([]byte("name = \"x\"\nduration = \"-1s\"\n[[pods]]\nname = \"p\"\nreplicas = -3\n"))
	f.Add([]byte("name = \"x\"\nduration = \"1m\"\n[[pods]]\nname = \"p\"\n[[pods.containers]]\nname = \"c\"\nexit_at = \"1s\"\nexit_code = 300\n"))
	f.Add([]byte("name = \"x\"\nduration = \"1m\"\n[[variants]]\nname = \"v\"\nfixes = [\"volatile\", \"nope\"]\n[variants.replicas]\np = 2\n"))
	f.Add([]byte("name = \"x\"\nduration = \"1m\"\n[[faults]]\npoint = \"shim.unmount\"\nspec = \"delay(\"\ntarget = \"pod=\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("Parse refused a file without saying why")
			}
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Parse accepted a file Validate rejects: %v", err)
		}
		pods := 0
		for _, p := range file.Pods {
			pods += max(p.Replicas, 1)
		}
		for _, v := range file.Variants {
			for _, n := range v.Replicas {
				pods += n
			}
		}
		if pods > maxFuzzPods {
			return
		}
		variants, err := file.SelectVariants(file.VariantNames())
		if err != nil {
			t.Fatalf("SelectVariants of its own names: %v", err)
		}
		if len(variants) != len(file.Variants) {
			t.Fatalf("SelectVariants of its own names: %d variants, want %d", len(variants), len(file.Variants))
		}
		for _, v := range variants {
			p := file.plan(v)
			if p.name != v.Name {
				t.Fatalf("plan of %q is named %q", v.Name, p.name)
			}
			for _, pod := range p.pods {
				if len(pod.containers) == 0 {
					t.Fatalf("plan of %q has pod %q without containers", v.Name, pod.name)
				}
			}
		}
	})
}
