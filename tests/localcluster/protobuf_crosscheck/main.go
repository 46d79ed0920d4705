// Command protobuf_crosscheck prints random built-in objects as Kubernetes protobuf next to the JSON that
// the real Go types make of the same bytes, one JSON line per object: {"pb": base64, "json": {...}}.
//
// test_protobuf.py decodes each "pb" with the emulator's decoder and expects exactly "json". The JSON is
// taken after a protobuf round trip (decode the bytes, then json.Marshal), because that is what a real
// server holds once it has read a protobuf body: an empty list and a nil one, for instance, are the same
// bytes on the wire.
//
// Usage: go run . <seed> <objects per kind>
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: protobuf_crosscheck <seed> <objects per kind>")
		os.Exit(2)
	}
	seed, err1 := strconv.ParseInt(os.Args[1], 10, 64)
	count, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "seed and count must be integers")
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		admissionregistrationv1.AddToScheme, appsv1.AddToScheme, authenticationv1.AddToScheme,
		authorizationv1.AddToScheme, autoscalingv1.AddToScheme, coordinationv1.AddToScheme, corev1.AddToScheme,
		eventsv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme, schedulingv1.AddToScheme,
		storagev1.AddToScheme, apiextensionsv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	serializer := protobuf.NewSerializer(scheme, scheme)
	filler := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).MaxDepth(12).Funcs(valueFillers()...)

	var kinds []schema.GroupVersionKind
	for gvk := range scheme.AllKnownTypes() {
		if gvk.Version == "v1" && !strings.HasSuffix(gvk.Kind, "List") && gvk.Kind != "WatchEvent" && gvk.Kind != "Status" {
			kinds = append(kinds, gvk)
		}
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].String() < kinds[j].String() })
	for _, gvk := range kinds {
		for i := 0; i < count; i++ {
			obj, err := scheme.New(gvk)
			if err != nil {
				panic(err)
			}
			filler.Fill(obj)
			obj.GetObjectKind().SetGroupVersionKind(gvk)
			var wire bytes.Buffer
			if err := serializer.Encode(obj, &wire); err != nil {
				continue // option types and the like that have no protobuf form
			}
			back, _, err := serializer.Decode(wire.Bytes(), nil, nil)
			if err != nil {
				panic(err)
			}
			back.GetObjectKind().SetGroupVersionKind(gvk)
			document, err := json.Marshal(back)
			if err != nil {
				panic(err)
			}
			line, _ := json.Marshal(map[string]any{"pb": base64.StdEncoding.EncodeToString(wire.Bytes()),
				"json": json.RawMessage(document)})
			fmt.Println(string(line))
		}
	}
}

// valueFillers keep random values to what the API can hold: quantities, times and raw JSON that parse, and
// finite floats (JSON has no NaN); recursive schema types stay shallow.
func valueFillers() []any {
	return []any{
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewMilliQuantity(c.Int63n(100000), resource.DecimalSI)
		},
		func(t *metav1.Time, c randfill.Continue) {
			if c.Bool() {
				*t = metav1.Time{}
			} else {
				*t = metav1.Unix(c.Int63n(4000000000), 0)
			}
		},
		func(t *metav1.MicroTime, c randfill.Continue) {
			*t = metav1.NewMicroTime(time.Unix(c.Int63n(4000000000), c.Int63n(1e9)))
		},
		func(value *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*value = intstr.FromInt32(c.Int31() - 1<<30)
			} else {
				*value = intstr.FromString(c.String(5))
			}
		},
		func(raw *runtime.RawExtension, c randfill.Continue) {
			if c.Bool() {
				raw.Raw = []byte(`{"x":[1,"y",{"z":null}]}`)
			}
		},
		func(raw *apiextensionsv1.JSON, c randfill.Continue) {
			if c.Bool() {
				raw.Raw = []byte(`"v"`)
			}
		},
		func(fields *metav1.FieldsV1, c randfill.Continue) { fields.Raw = []byte(`{"f:a":{}}`) },
		func(number *float64, c randfill.Continue) { *number = float64(c.Int31n(1000)-500) / 8 },
		func(value *apiextensionsv1.JSONSchemaPropsOrBool, c randfill.Continue) {
			if c.Bool() {
				value.Allows = c.Bool()
			} else {
				value.Schema = &apiextensionsv1.JSONSchemaProps{Type: "string"}
			}
		},
		func(value *apiextensionsv1.JSONSchemaPropsOrArray, c randfill.Continue) {
			if c.Bool() {
				value.Schema = &apiextensionsv1.JSONSchemaProps{Type: "integer"}
			} else {
				value.JSONSchemas = []apiextensionsv1.JSONSchemaProps{{Type: "a"}, {Type: "b"}}
			}
		},
		func(value *apiextensionsv1.JSONSchemaPropsOrStringArray, c randfill.Continue) {
			if c.Bool() {
				value.Schema = &apiextensionsv1.JSONSchemaProps{Type: "object"}
			} else {
				value.Property = []string{"p"}
			}
		},
		func(props *apiextensionsv1.JSONSchemaProps, c randfill.Continue) {
			props.Type, props.Description, props.Format = c.String(4), c.String(3), c.String(2)
			if c.Bool() {
				props.Ref = new(string)
				*props.Ref = "#/" + c.String(3)
			}
			if c.Bool() {
				props.Properties = map[string]apiextensionsv1.JSONSchemaProps{"k": {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`1`)}}}
			}
			if c.Bool() {
				props.XPreserveUnknownFields = new(bool)
			}
			if c.Bool() {
				maximum := float64(c.Int31n(9)) / 2
				props.Maximum = &maximum
			}
			if c.Bool() {
				props.Enum = []apiextensionsv1.JSON{{Raw: []byte(`"a"`)}, {}}
			}
		},
	}
}
