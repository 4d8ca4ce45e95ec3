"""The composition root of the Serve application: the fleet's shape.

Chapter 12, "Horizontal scaling" and "Auto-scaling for inference".
`build_application` is the one place that picks concrete parts: the
replica class (chapter 6's pipeline), the request router by name
(ours, Serve's default power of two choices, or its round robin), a
fixed replica count or the autoscaling range, how long a stopping
replica may drain, and what each replica claims: one `accelerator`,
the lab's stand-in for `num_gpus: 1`, so Ray places no more replicas
than there are devices. `build_app` is the same for a KubeRay
`RayService`, which names it as the application's `import_path`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from ch12_scaling.gpu_router import STATS_PERIOD_S
from ch12_scaling.replica import SpeechReplica
from ch12_scaling.replica_drain import CLOSE_RESERVE_S
from ch12_scaling.serve_policy import autoscaling_config
from ch12_scaling.settings import ServeSettings, parse_serve_settings

ROUTER_CLASSES = {
    "gpu-aware": "ch12_scaling.gpu_router:GpuAwareRouter",
    "power-of-two": "ray.serve._private.request_router:"
                    "PowerOfTwoChoicesRequestRouter",
    "round-robin": "ray.serve.experimental.round_robin_router:"
                   "RoundRobinRouter",
}
ACCELERATOR = "accelerator"  # the lab's resource: one per replica
# Room over a replica's own stream cap, so that its admission (a 503
# with a reason), not Serve's queue, is what refuses a stream.
ONGOING_HEADROOM = 4


def replica_options(settings: ServeSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_ongoing_requests": (settings.max_streams_per_replica
                                 + ONGOING_HEADROOM),
        "request_router_config": RequestRouterConfig.model_validate({
            "request_router_class": ROUTER_CLASSES[settings.router],
            "request_router_kwargs": router_kwargs(settings),
            "request_routing_stats_period_s": STATS_PERIOD_S}),
        "graceful_shutdown_timeout_s": settings.drain_s + CLOSE_RESERVE_S,
        "graceful_shutdown_wait_loop_s": 1.0,
        "health_check_period_s": 2.0,
        "ray_actor_options": {"num_cpus": 0,
                              "resources": {ACCELERATOR: 1}},
    }
    if settings.autoscaling:
        options["autoscaling_config"] = autoscaling_config(
            settings.min_replicas, settings.max_replicas,
            settings.streams_per_replica,
            up_window_s=settings.scale_up_window_s,
            down_window_s=settings.scale_down_window_s,
            look_back_period_s=settings.scale_look_back_s)
    else:
        options["num_replicas"] = settings.replicas
    return options


def router_kwargs(settings: ServeSettings) -> dict[str, str]:
    """What the GPU-aware router needs to keep streams in their
    customers' regions; Serve's own routers take nothing."""
    if settings.router != "gpu-aware":
        return {}
    return {"regions": settings.regions, "residency": settings.residency,
            "key_owners": settings.key_owners}


def build_application(settings: ServeSettings) -> Application:
    replica = serve.deployment(**replica_options(settings))(SpeechReplica)
    return replica.bind(settings)


def build_app(args: Mapping[str, object]) -> Application:
    """A Serve application builder: `args` are `serve`'s flags by
    name (`{"router": "gpu-aware", "max_replicas": 4}`)."""
    argv = [part for name, value in args.items()
            for part in (f"--{name.replace('_', '-')}", str(value))]
    settings, _ = parse_serve_settings(argv)
    return build_application(settings)
