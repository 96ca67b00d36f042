"""A simulated Istio data plane for tests and demos, since Envoy cannot run here.

Given istiod (``istiod="127.0.0.1:15010"``), it routes requests by the Envoy configuration
istiod generates for a sidecar of each namespace (``meshsim.envoy_routes``, pure; read on every
push through ``istio-xds-routes`` by ``meshsim.xds``); without it, by its own reading of the
VirtualServices and DestinationRules (``meshsim.routing``, pure). It reads Services and
Deployments from an API server, lets each version answer with a configurable error rate and
latency (``meshsim.traffic``), and exports ``istio_requests_total`` and
``istio_request_duration_milliseconds`` (``meshsim.metrics``).

In a test::

    sim = Simulator(api_client, namespaces=["bookinfo"], seed=1,
                    istiod=cluster.istiod.grpc_address)
    with sim:                                   # runs in a thread; or: await sim.start()
        sim.set_load(namespace="bookinfo", service="reviews", rps=20)
        sim.set_version_behaviour(namespace="bookinfo", service="reviews", version="v2",
                                  error_rate=0.1, latency_p50_ms=20, latency_p99_ms=80)
        sim.request(host="reviews", namespace="bookinfo", headers={"end-user": "jason"})
        sim.session_round(name="browsers", host="reviews", namespace="bookinfo",
                          clients=100, requests=3)  # clients that keep cookies (sticky sessions)
        sim.stats()                             # served / mirrored counts per version

From a shell: ``istio-canary-meshsim --kubeconfig K --namespace bookinfo --rps reviews=20``;
the HTTP control API and ``/metrics`` are served by ``meshsim.server.SimulatorServer``
(``with SimulatorServer(sim, listen=("127.0.0.1", 0)) as served: served.url``).
"""
