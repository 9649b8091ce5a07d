package store

import (
	"reflect"
	"testing"
)

// TestClonesShareNoMemory fills every slice, map and pointer field of the
// cached record types and checks that the clone owns its own copy, so a
// field added later without a matching clone line fails here instead of
// letting one caller's change leak into the cache.
func TestClonesShareNoMemory(t *testing.T) {
	checkClone(t, cloneToken)
	checkClone(t, cloneCluster)
	checkClone(t, cloneAdminToken)
}

func checkClone[T any](t *testing.T, clone func(*T) *T) {
	t.Helper()
	orig := new(T)
	v := reflect.ValueOf(orig).Elem()
	typ := v.Type()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			m.SetMapIndex(reflect.New(f.Type().Key()).Elem(), reflect.New(f.Type().Elem()).Elem())
			f.Set(m)
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Fatalf("%s.%s is a %s: teach its clone function and this test about it", typ.Name(), typ.Field(i).Name, f.Kind())
		}
	}
	c := reflect.ValueOf(clone(orig)).Elem()
	if !reflect.DeepEqual(orig, c.Addr().Interface()) {
		t.Errorf("clone of %s differs from the original", typ.Name())
	}
	for i := range v.NumField() {
		switch v.Field(i).Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer:
			if v.Field(i).Pointer() == c.Field(i).Pointer() {
				t.Errorf("clone of %s shares field %s with the original: copy it in the clone function", typ.Name(), typ.Field(i).Name)
			}
		}
	}
}
