package flinkconf
import ("testing";"os";"time";"go.yaml.in/yaml/v3")
func TestDemo(t *testing.T){
 data, _ := os.ReadFile("/tmp/fcdemo/slow1")
 start := time.Now()
 var n yaml.Node
 err := yaml.Unmarshal(data, &n)
 t.Logf("unmarshal %v %v", time.Since(start), err)
 start = time.Now()
 _, err = MergeConfigYAML(data, testKeys(t, "/x"))
 t.Logf("merge %v %v", time.Since(start), err)
 start = time.Now()
 _, err = MergeLegacy(data, testKeys(t, "/x"))
 t.Logf("legacy %v %v", time.Since(start), err)
}
