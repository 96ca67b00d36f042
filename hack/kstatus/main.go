// istio-kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the library
// behind Flux's health checks and kpt/cli-utils' status polling, computes for a Kubernetes
// object: `kubectl get canaryrelease NAME -o json | istio-kstatus`.
//
// Output, one JSON object: {"status": "InProgress|Current|Failed|Terminating",
// "message": "...", "conditions": [...]}. An input that is not one JSON object is an error
// (exit status 1) with the reason on stderr.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type output struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "istio-kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	obj := map[string]interface{}{}
	// Kubernetes' JSON reading: whole numbers become int64, as kstatus expects of generations.
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("the input is not a JSON object: %w", err)
	}
	if _, ok := obj["kind"]; !ok {
		return fmt.Errorf("the input has no kind: pipe one object (kubectl get KIND NAME -o json)")
	}
	result, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return fmt.Errorf("computing the status: %w", err)
	}
	conditions := result.Conditions
	if conditions == nil {
		conditions = []status.Condition{}
	}
	return json.NewEncoder(out).Encode(output{
		Status:     result.Status.String(),
		Message:    result.Message,
		Conditions: conditions,
	})
}
