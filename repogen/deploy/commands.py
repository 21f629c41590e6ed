"""``repogen manifests``: command-line side of repogen.deploy.manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError


def add_manifests_parser(sub: Any) -> None:
    from repogen.deploy.manifests import DEFAULT_IMAGE

    p = sub.add_parser("manifests", help="Kubernetes / KServe manifests for Triton serving an s3:// repository")
    p.add_argument("uri", help="s3://bucket/prefix the cluster reads (see repogen publish)")
    p.add_argument("--out", required=True, help="folder for the YAML files")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--name", default="triton", help="Deployment/Service name (a DNS label)")
    p.add_argument("--namespace", default="default")
    p.add_argument("--image", default=DEFAULT_IMAGE, help="tritonserver image (KServe: its tag is runtimeVersion)")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--gpus", type=int, default=1, help="nvidia.com/gpu per replica (0: CPU only)")
    p.add_argument("--cpu", default="4", help="CPU request per replica")
    p.add_argument("--memory", default="16Gi", help="memory request and limit per replica")
    p.add_argument("--control-mode", default="poll", choices=["poll", "explicit", "none"],
                   help="poll: a publish rolls out by itself; explicit: repogen publish --rollout")
    p.add_argument("--poll-secs", type=int, default=30)
    p.add_argument("--secret", default="triton-s3-credentials",
                   help="Secret holding AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ('' for none, e.g. IRSA)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--startup-minutes", type=int, default=10, help="how long the startup probe allows for loading")
    p.add_argument("--hpa", metavar="MIN:MAX", help="add a HorizontalPodAutoscaler on queue time")
    p.add_argument("--hpa-target-us", default="50000", help="average queue time per request that scales out")
    p.add_argument("--service-monitor", action="store_true", help="add a Prometheus Operator ServiceMonitor")
    p.add_argument("--kserve", action="store_true", help="add a KServe InferenceService")
    p.add_argument("--templates", help="folder of templates that replace the built-in ones of the same name")
    p.add_argument("--force", action="store_true", help="replace manifests already in --out")
    p.add_argument("--json", action="store_true")


def run_manifests(args: Any) -> int:
    from repogen.deploy.manifests import ManifestOptions, write

    hpa = None
    if args.hpa:
        try:
            lo, hi = (int(x) for x in args.hpa.split(":"))
        except ValueError as exc:
            raise ConfigError(f"--hpa {args.hpa}: expected MIN:MAX, e.g. 1:8") from exc
        hpa = (lo, hi)
    opts = ManifestOptions(name=args.name, namespace=args.namespace, image=args.image, replicas=args.replicas,
                           gpus=args.gpus, cpu=args.cpu, memory=args.memory, control_mode=args.control_mode,
                           poll_secs=args.poll_secs, startup_minutes=args.startup_minutes, secret=args.secret or None, region=args.region, hpa=hpa,
                           hpa_target=args.hpa_target_us, service_monitor=args.service_monitor, kserve=args.kserve,
                           templates=Path(args.templates) if args.templates else None)
    written = write(args.uri, Path(args.out), opts, args.endpoint_url, force=args.force)
    if args.json:
        print(json.dumps({"ok": True, "files": [str(p) for p in written]}))
    else:
        for p in written:
            print(p)
    return 0
