package main

import (
	"encoding/json"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// snapshotLine is one printed line. Route configurations are protojson as istiod sent them;
// clusters are reduced to what routing needs: their type and, for EDS clusters, the endpoints.
type snapshotLine struct {
	Node                string            `json:"node"`
	Versions            map[string]string `json:"versions"`
	RouteConfigurations []json.RawMessage `json:"routeConfigurations"`
	TCPRoutes           []tcpRoute        `json:"tcpRoutes"`
	Clusters            []clusterLine     `json:"clusters"`
}

// tcpRoute is one tcp_proxy filter of a listener: where its connections go.
type tcpRoute struct {
	Listener string          `json:"listener"`
	Address  string          `json:"address"`
	Port     uint32          `json:"port"`
	Clusters []weightedRoute `json:"clusters"`
}

type weightedRoute struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

func newTCPRoute(l *listenerv3.Listener, proxy *tcpv3.TcpProxy) tcpRoute {
	address := l.GetAddress().GetSocketAddress()
	route := tcpRoute{Listener: l.GetName(), Address: address.GetAddress(), Port: address.GetPortValue()}
	if cluster := proxy.GetCluster(); cluster != "" {
		route.Clusters = []weightedRoute{{Name: cluster, Weight: 100}}
	}
	for _, c := range proxy.GetWeightedClusters().GetClusters() {
		route.Clusters = append(route.Clusters, weightedRoute{Name: c.GetName(), Weight: c.GetWeight()})
	}
	return route
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
		TCPRoutes:           append([]tcpRoute{}, s.tcp...),
		Clusters:            []clusterLine{},
	}
	sort.SliceStable(line.TCPRoutes, func(i, j int) bool { return line.TCPRoutes[i].Listener < line.TCPRoutes[j].Listener })
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
