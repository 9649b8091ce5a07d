package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// kustomization is the part of kustomize's Kustomization and Component that
// our files use, decoded strictly so a typo in a field name fails here.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Patches    []struct {
		Path   string `json:"path"`
		Target struct {
			Group   string `json:"group,omitempty"`
			Version string `json:"version,omitempty"`
			Kind    string `json:"kind,omitempty"`
			Name    string `json:"name,omitempty"`
		} `json:"target"`
	} `json:"patches,omitempty"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Files   []string `json:"files"`
		Options *struct {
			DisableNameSuffixHash bool              `json:"disableNameSuffixHash"`
			Labels                map[string]string `json:"labels,omitempty"`
		} `json:"options,omitempty"`
	} `json:"configMapGenerator,omitempty"`
	GeneratorOptions *struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"generatorOptions,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// kustomizationDirs lists every directory under deploy/ with a
// kustomization.yaml.
func kustomizationDirs(t testing.TB) []string {
	t.Helper()
	var dirs []string
	for _, root := range []string{"kubernetes", "examples"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == "kustomization.yaml" {
				dirs = append(dirs, filepath.Dir(path))
			}
			return err
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	if len(dirs) < 7 {
		t.Fatalf("found only %d kustomizations (%v): the tests are not looking where the manifests are", len(dirs), dirs)
	}
	return dirs
}

func readKustomization(t testing.TB, dir string) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatalf("read kustomization: %v", err)
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// referencedFiles returns the files of dir that k names, and fails on names
// that do not exist.
func referencedFiles(t testing.TB, dir string, k kustomization) []string {
	t.Helper()
	var files []string
	check := func(name string, wantDir bool) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s/kustomization.yaml names %q, which does not exist", dir, name)
			return
		}
		if fi.IsDir() != wantDir {
			t.Errorf("%s/kustomization.yaml names %q: directory = %v, want %v", dir, name, fi.IsDir(), wantDir)
		}
		if !fi.IsDir() && !strings.Contains(name, "/") {
			files = append(files, name)
		}
	}
	for _, r := range k.Resources {
		fi, err := os.Stat(filepath.Join(dir, r))
		check(r, err == nil && fi.IsDir())
	}
	for _, c := range k.Components {
		check(c, true)
	}
	for _, p := range k.Patches {
		check(p.Path, false)
	}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Files {
			check(f, false)
		}
	}
	return files
}

func TestKustomizationsListExactlyTheirFiles(t *testing.T) {
	for _, dir := range kustomizationDirs(t) {
		t.Run(dir, func(t *testing.T) {
			k := readKustomization(t, dir)
			switch {
			case k.Kind == "Kustomization" && k.APIVersion == "kustomize.config.k8s.io/v1beta1":
			case k.Kind == "Component" && k.APIVersion == "kustomize.config.k8s.io/v1alpha1":
			default:
				t.Fatalf("%s/kustomization.yaml is %s %s, want a Kustomization or Component", dir, k.APIVersion, k.Kind)
			}
			referenced := referencedFiles(t, dir, k)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("read dir: %v", err)
			}
			for _, e := range entries {
				if e.IsDir() || e.Name() == "kustomization.yaml" || strings.HasSuffix(e.Name(), ".md") {
					continue
				}
				if !slices.Contains(referenced, e.Name()) {
					t.Errorf("%s/%s is not named by its kustomization.yaml, so it is never applied", dir, e.Name())
				}
			}
		})
	}
}

// renders caches kubectl kustomize output per directory: the manifests do
// not change while the tests run, and each render starts a process.
var renders sync.Map

// kustomize renders a kustomization with the kustomize built into kubectl,
// or with the standalone kustomize when there is no kubectl (make tools
// installs it from the Go module proxy then).
func kustomize(t testing.TB, dir string) []byte {
	t.Helper()
	if out, ok := renders.Load(dir); ok {
		return out.([]byte)
	}
	out, err := runKustomize(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	renders.Store(dir, out)
	return out
}

// runKustomize renders dir with kubectl kustomize (or kustomize build) and
// returns the render, or an error that holds the tool's message.
func runKustomize(t testing.TB, dir string) ([]byte, error) {
	t.Helper()
	var args []string
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		args = []string{kubectl, "kustomize", dir}
	} else if kz, err := exec.LookPath("kustomize"); err == nil {
		args = []string{kz, "build", dir}
	} else {
		t.Fatalf("kubectl or kustomize is needed to render the kustomizations: run make tools (it installs kustomize), or go install sigs.k8s.io/kustomize/kustomize/v5@%s", kustomizeVersion)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return nil, fmt.Errorf("%s: %v", strings.Join(args, " "), err)
	}
	return out, nil
}

// kustomizeVersion is the kustomize that make tools installs when there is
// no kubectl: the one built into kubectl 1.32.
const kustomizeVersion = "v5.5.0"

// overlay writes a kustomization in a temporary directory that uses the
// given resources and components, and returns its directory.
func overlay(t testing.TB, resources, components []string) string {
	t.Helper()
	dir := t.TempDir()
	rel := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatalf("abs: %v", err)
			}
			r, err := filepath.Rel(dir, abs)
			if err != nil {
				t.Fatalf("rel: %v", err)
			}
			out = append(out, r)
		}
		return out
	}
	text := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [" +
		strings.Join(rel(resources), ", ") + "]\ncomponents: [" + strings.Join(rel(components), ", ") + "]\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(text), 0o644); err != nil {
		t.Fatalf("write overlay: %v", err)
	}
	return dir
}

// rendered renders a kustomization and decodes every object strictly.
func rendered(t testing.TB, dir string) []object {
	t.Helper()
	objs, err := decodeAll(kustomize(t, dir))
	if err != nil {
		t.Fatalf("rendered %s: %v", dir, err)
	}
	return objs
}

func TestEveryKustomizationRendersToStrictlyValidObjects(t *testing.T) {
	tests := []struct {
		name      string
		dir       string
		wantKinds []string
	}{
		{"the server base", "kubernetes", []string{"ConfigMap", "Namespace", "NetworkPolicy", "Service", "ServiceAccount", "StatefulSet"}},
		{"the base with the tokenreview component", "", []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Namespace", "NetworkPolicy", "NetworkPolicy", "Service", "ServiceAccount", "StatefulSet"}},
		{"the monitoring objects", "kubernetes/monitoring", []string{"ConfigMap", "PrometheusRule", "ServiceMonitor"}},
		{"the standalone example", "examples/standalone", []string{"ConfigMap", "FlinkDeployment", "Service", "ServiceAccount", "ServiceAccount"}},
		{"the native example", "examples/native", []string{"ConfigMap", "FlinkDeployment", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceAccount"}},
		{"the standalone example with REST for the operator", "examples/operator-rest", []string{"ConfigMap", "FlinkDeployment", "NetworkPolicy", "Service", "ServiceAccount", "ServiceAccount"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = overlay(t, []string{"kubernetes"}, []string{"kubernetes/tokenreview"})
			}
			var kinds []string
			for _, o := range rendered(t, dir) {
				kinds = append(kinds, o.Kind)
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tt.wantKinds) {
				t.Fatalf("rendered kinds = %v, want %v", kinds, tt.wantKinds)
			}
		})
	}
}

func TestEveryManifestFileHoldsOneStrictlyValidObject(t *testing.T) {
	files := 0
	for _, dir := range kustomizationDirs(t) {
		k := readKustomization(t, dir)
		for _, r := range k.Resources {
			path := filepath.Join(dir, r)
			if fi, err := os.Stat(path); err != nil || fi.IsDir() {
				continue
			}
			files++
			if objs := mustDecodeFile(t, path); len(objs) != 1 {
				t.Errorf("%s holds %d objects, want one object per file", path, len(objs))
			}
		}
	}
	if files < 15 {
		t.Fatalf("decoded only %d manifest files: the kustomizations list fewer resources than shipped", files)
	}
}
