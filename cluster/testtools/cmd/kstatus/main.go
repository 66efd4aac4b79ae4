// Command kstatus prints the kstatus result (sigs.k8s.io/cli-utils/pkg/kstatus/status)
// of Kubernetes objects: the same computation Flux and cli-utils' apply/wait use.
//
// Input, one of:
//
//	kstatus < objects.json
//	    JSON on stdin: one object, a List (kind ...List with items), or a stream of
//	    objects one after the other (JSON lines or concatenated).
//	kstatus --kubeconfig PATH --resource shardsets.v1alpha1.shards.anoma.net [-n NS] [NAME...]
//	    objects read from a live cluster (all of that resource in NS, or the NAMEs).
//	    With --watch, one line for every object seen through a watch (the initial list,
//	    then every change) until --timeout or SIGTERM.
//
// Output: one JSON object per input object, on its own line:
//
//	{"apiVersion","kind","namespace","name","generation","observedGeneration",
//	 "resourceVersion","event","status","message","conditions"}
//
// status is kstatus's (InProgress, Failed, Current, Terminating, NotFound, Unknown);
// conditions are those kstatus computed (Reconciling/Stalled). Exit code 0 unless the
// input could not be read or an object's status could not be computed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	APIVersion         string             `json:"apiVersion"`
	Kind               string             `json:"kind"`
	Namespace          string             `json:"namespace,omitempty"`
	Name               string             `json:"name"`
	Generation         int64              `json:"generation"`
	ObservedGeneration *int64             `json:"observedGeneration"`
	ResourceVersion    string             `json:"resourceVersion,omitempty"`
	Event              string             `json:"event,omitempty"`
	Status             string             `json:"status"`
	Message            string             `json:"message"`
	Conditions         []status.Condition `json:"conditions"`
}

func describe(u *unstructured.Unstructured, event string) (line, error) {
	res, err := status.Compute(u)
	if err != nil {
		return line{}, fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	out := line{
		APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(),
		Name: u.GetName(), Generation: u.GetGeneration(), ResourceVersion: u.GetResourceVersion(),
		Event: event, Status: res.Status.String(), Message: res.Message,
		Conditions: res.Conditions,
	}
	if og, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); found {
		out.ObservedGeneration = &og
	}
	if out.Conditions == nil {
		out.Conditions = []status.Condition{}
	}
	return out, nil
}

func emit(enc *json.Encoder, u *unstructured.Unstructured, event string) error {
	l, err := describe(u, event)
	if err != nil {
		return err
	}
	return enc.Encode(l)
}

func fromStdin(enc *json.Encoder) error {
	dec := json.NewDecoder(os.Stdin)
	dec.UseNumber()
	n := 0
	for {
		var obj map[string]interface{}
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		u := &unstructured.Unstructured{}
		// Round-trip through the apimachinery decoder: numbers become int64/float64 as
		// they do for objects from the API server.
		raw, _ := json.Marshal(obj)
		if err := u.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("object %d: %w", n, err)
		}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return err
			}
			for i := range list.Items {
				if err := emit(enc, &list.Items[i], ""); err != nil {
					return err
				}
				n++
			}
			continue
		}
		if err := emit(enc, u, ""); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errors.New("no object on stdin")
	}
	return nil
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "read objects from this cluster instead of stdin")
	resource := flag.String("resource", "", "resource.version.group (e.g. shardsets.v1alpha1.shards.anoma.net; core: pods.v1.)")
	namespace := flag.String("n", "", "namespace (empty: cluster-scoped or all namespaces)")
	doWatch := flag.Bool("watch", false, "with --kubeconfig: print a line for every watch event")
	timeout := flag.Duration("timeout", 0, "with --watch: stop after this long (0: until SIGTERM/SIGINT)")
	flag.Parse()
	enc := json.NewEncoder(os.Stdout)
	var err error
	if *kubeconfig == "" {
		err = fromStdin(enc)
	} else {
		err = fromCluster(enc, *kubeconfig, *resource, *namespace, flag.Args(), *doWatch, *timeout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func fromCluster(enc *json.Encoder, kubeconfig, resource, namespace string, names []string,
	doWatch bool, timeout time.Duration) error {
	parts := strings.SplitN(resource, ".", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("--resource %q: want resource.version.group", resource)
	}
	gvr := schema.GroupVersionResource{Resource: parts[0], Version: parts[1], Group: parts[2]}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return err
	}
	ri := client.Resource(gvr).Namespace(namespace)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = true
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range list.Items {
		u := &list.Items[i]
		if len(wanted) > 0 && !wanted[u.GetName()] {
			continue
		}
		u.SetAPIVersion(list.GetAPIVersion())
		u.SetKind(strings.TrimSuffix(list.GetKind(), "List"))
		if err := emit(enc, u, "LIST"); err != nil {
			return err
		}
	}
	if !doWatch {
		return nil
	}
	w, err := ri.Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch closed by the server")
			}
			if ev.Type == watch.Error {
				return fmt.Errorf("watch error: %v", ev.Object)
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || (len(wanted) > 0 && !wanted[u.GetName()]) {
				continue
			}
			if err := emit(enc, u, string(ev.Type)); err != nil {
				return err
			}
		}
	}
}
