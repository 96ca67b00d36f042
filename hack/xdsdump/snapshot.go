package main

import (
	"encoding/json"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// snapshotLine is one printed line. Route configurations are protojson as istiod sent them;
// clusters are reduced to what routing needs: their type and, for EDS clusters, the endpoints.
type snapshotLine struct {
	Node                string            `json:"node"`
	Versions            map[string]string `json:"versions"`
	RouteConfigurations []json.RawMessage `json:"routeConfigurations"`
	Clusters            []clusterLine     `json:"clusters"`
}

type clusterLine struct {
	Name      string         `json:"name"`
	Type      string         `json:"type"`
	Endpoints []endpointLine `json:"endpoints,omitempty"`
}

// endpointLine is one LbEndpoint. Workload is Istio's telemetry metadata of the endpoint
// ("name;namespace;canonical service;canonical revision;cluster"), which names its pod's workload.
type endpointLine struct {
	Address  string `json:"address"`
	Port     uint32 `json:"port"`
	Health   string `json:"health"`
	Weight   uint32 `json:"weight"`
	Workload string `json:"workload,omitempty"`
}

func (s *subscriber) snapshot() (string, error) {
	line := snapshotLine{
		Node: s.node.GetId(),
		Versions: map[string]string{
			"routes": s.version[routeType], "clusters": s.version[clusterType],
			"endpoints": s.version[endpointType], "listeners": s.version[listenerType],
		},
		RouteConfigurations: []json.RawMessage{},
		Clusters:            []clusterLine{},
	}
	for _, name := range s.names[routeType] {
		r, ok := s.routes[name]
		if !ok {
			continue
		}
		raw, err := protojson.Marshal(r)
		if err != nil {
			return "", err
		}
		line.RouteConfigurations = append(line.RouteConfigurations, raw)
	}
	for _, c := range s.clusters {
		line.Clusters = append(line.Clusters, s.clusterLine(c))
	}
	sort.Slice(line.Clusters, func(i, j int) bool { return line.Clusters[i].Name < line.Clusters[j].Name })
	out, err := json.Marshal(line)
	return string(out), err
}

func (s *subscriber) clusterLine(c *clusterv3.Cluster) clusterLine {
	out := clusterLine{Name: c.GetName(), Type: c.GetType().String()}
	if c.GetType() != clusterv3.Cluster_EDS {
		return out
	}
	out.Endpoints = []endpointLine{}
	for _, locality := range s.endpoints[edsName(c)].GetEndpoints() {
		for _, lb := range locality.GetLbEndpoints() {
			out.Endpoints = append(out.Endpoints, endpoint(lb))
		}
	}
	return out
}

func endpoint(lb *endpointv3.LbEndpoint) endpointLine {
	address := lb.GetEndpoint().GetAddress().GetSocketAddress()
	weight := lb.GetLoadBalancingWeight().GetValue()
	if weight == 0 {
		weight = 1
	}
	workload := lb.GetMetadata().GetFilterMetadata()["istio"].GetFields()["workload"].GetStringValue()
	return endpointLine{
		Address: address.GetAddress(), Port: address.GetPortValue(),
		Health: lb.GetHealthStatus().String(), Weight: weight, Workload: workload,
	}
}
