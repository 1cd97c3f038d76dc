"""Which images a node can run, and how: a pure decision from the container spec.

Why a decision and not a registry pull: netemu has no container images. A pod of a *built-in*
image (agnhost netexec / serve-hostname / pause, nginx, pause) is served in-process by the node
agent, so it costs no process (1000 pods must fit on a 2-core box). Any other image runs its
``command`` + ``args`` from the host's binaries inside the pod namespace. An image with neither
gets a clear "not supported" reason naming what is, so the kubelet can set Waiting with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AGNHOST_REPOS = frozenset({
    "registry.k8s.io/e2e-test-images/agnhost",
    "k8s.gcr.io/e2e-test-images/agnhost",
    "gcr.io/k8s-staging-e2e-test-images/agnhost",
})
NGINX_REPOS = frozenset({"nginx", "library/nginx", "docker.io/nginx", "docker.io/library/nginx",
                         "registry.k8s.io/nginx", "k8s.gcr.io/nginx"})
PAUSE_REPOS = frozenset({"registry.k8s.io/pause", "k8s.gcr.io/pause", "gcr.io/google_containers/pause"})
COREDNS_REPOS = frozenset({"registry.k8s.io/coredns/coredns", "k8s.gcr.io/coredns/coredns", "k8s.gcr.io/coredns",
                           "coredns/coredns", "docker.io/coredns/coredns"})
INGRESS_NGINX_REPOS = frozenset({"registry.k8s.io/ingress-nginx/controller", "k8s.gcr.io/ingress-nginx/controller",
                                 "registry.k8s.io/ingress-nginx/controller-chroot"})
AGNHOST_APPS = ("netexec", "serve-hostname", "pause")
# Userland images: the node's own userland stands in for theirs. repository -> (ENTRYPOINT,
# CMD) of the real image, so a container with args only (``kubectl run bb --image=busybox --
# sleep 3600``) or nothing (``-it ... -- sh`` gives args) runs what Docker would run.
USERLAND = {"busybox": ([], ["sh"]), "alpine": ([], ["/bin/sh"]), "debian": ([], ["bash"]),
            "ubuntu": ([], ["bash"]), "curlimages/curl": (["curl"], []), "python": ([], ["python3"]),
            # the DNS-debugging pod of kubernetes.io's "Debugging DNS Resolution" (nslookup, dig, host)
            "registry.k8s.io/e2e-test-images/jessie-dnsutils": ([], ["bash"])}

SUPPORTED_TEXT = ("built-in images: registry.k8s.io/e2e-test-images/agnhost (args netexec, "
                  "serve-hostname or pause), nginx (HTTP on 80), registry.k8s.io/pause, "
                  "registry.k8s.io/coredns/coredns (-conf FILE from a configMap volume), "
                  "registry.k8s.io/ingress-nginx/controller; any other "
                  "image needs a command, run from the node's own binaries; userland images (busybox, alpine, debian, "
                  "ubuntu, curlimages/curl, python, e2e-test-images/jessie-dnsutils) run their command or args with "
                  "the node's own userland")

REASON_UNSUPPORTED = "ImageNotSupported"


def repository(image: str) -> str:
    """The image reference without tag or digest: ``nginx:1.25`` -> ``nginx``.

    A colon after the last slash is a tag; one before it is a registry port (``host:5000/x``).
    """
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    return ref


@dataclass(frozen=True)
class Builtin:
    """An app served in-process: ``app`` in {netexec, serve-hostname, nginx, pause}."""

    app: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Process:
    """A real process: argv from the container's command + args, run from the host's binaries."""

    argv: list[str]


@dataclass(frozen=True)
class Unsupported:
    """Nothing we can run; ``reason`` and ``message`` go into the container's Waiting state."""

    reason: str
    message: str


class BadArgs(ValueError):
    """Arguments a built-in app rejects (as upstream's flag parser would: the container fails)."""


def resolve(container: dict) -> Builtin | Process | Unsupported:
    """Decide how to run one container spec (a Kubernetes JSON dict)."""
    image = container.get("image") or ""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    repo = repository(image)
    if repo in AGNHOST_REPOS:
        argv = command + args
        if argv and argv[0].rsplit("/", 1)[-1] == "agnhost":
            argv = argv[1:]
        if argv and argv[0] in AGNHOST_APPS:
            try:
                return Builtin(argv[0], parse_agnhost(argv[0], argv[1:]))
            except BadArgs as exc:
                return Unsupported("InvalidArgs", f"agnhost {argv[0]}: {exc}")
        if command:
            return Process(command + args)
        sub = argv[0] if argv else "(none)"
        return Unsupported(REASON_UNSUPPORTED,
                           f"agnhost subcommand {sub!r} is not built in (built in: "
                           f"{', '.join(AGNHOST_APPS)}); give the container a command to run "
                           f"a host binary instead")
    if repo in COREDNS_REPOS:
        return _server_image("coredns", "coredns", parse_coredns, command, args)
    if repo in INGRESS_NGINX_REPOS:
        return _server_image("ingress-nginx", "nginx-ingress-controller", parse_ingress_nginx, command, args)
    userland = USERLAND.get(userland_name(repo))
    if userland is not None:
        return Process(userland_argv(userland, command, args))
    if command:
        return Process(command + args)
    if repo in NGINX_REPOS:
        return Builtin("nginx", {"port": 80})
    if repo in PAUSE_REPOS:
        return Builtin("pause", {})
    return Unsupported(REASON_UNSUPPORTED,
                       f"image {image!r} cannot run here: it has no command; {SUPPORTED_TEXT}")


def userland_name(repo: str) -> str:
    """``docker.io/library/busybox`` -> ``busybox``; ``docker.io/curlimages/curl`` -> ``curlimages/curl``."""
    for prefix in ("docker.io/library/", "library/", "docker.io/", "index.docker.io/library/"):
        if repo.startswith(prefix):
            return repo[len(prefix):]
    return repo


def userland_argv(image: tuple[list[str], list[str]], command: list[str], args: list[str]) -> list[str]:
    """Docker's rule: ``command`` replaces the ENTRYPOINT, ``args`` the CMD. A leading
    ``busybox APPLET`` runs the host's APPLET (busybox is the host's userland here)."""
    entrypoint, cmd = image
    argv = command + args if command else entrypoint + (args or cmd)
    if len(argv) > 1 and argv[0].rsplit("/", 1)[-1] == "busybox":
        argv = argv[1:]
    return argv


# -- agnhost flags (Go pflag style: --name=value, --name value, bare --bool) -----------------

_NETEXEC_INT = {"http-port": 8080, "udp-port": 8081, "sctp-port": -1, "delay-shutdown": 0}
_NETEXEC_STR = {"tls-cert-file", "tls-private-key-file", "http-override", "udp-listen-addresses"}
_SERVE_BOOL = {"tcp": False, "udp": False, "http": True, "close": False}


def parse_agnhost(app: str, argv: list[str]) -> dict:
    """Parse one agnhost subcommand's flags into options with upstream's defaults."""
    if app == "pause":
        return {}
    if app == "netexec":
        opts: dict = dict(_NETEXEC_INT)
        for name, value in _flags(argv, bools=set()):
            if name in _NETEXEC_INT:
                opts[name] = _int(name, value)
            elif name in _NETEXEC_STR:
                opts[name] = value
            else:
                raise BadArgs(f"unknown flag: --{name}")
        if opts.get("tls-cert-file"):
            raise BadArgs("--tls-cert-file (HTTPS) is not supported by the built-in netexec")
        return opts
    opts = dict(_SERVE_BOOL, port=9376)
    for name, value in _flags(argv, bools=set(_SERVE_BOOL)):
        if name == "port":
            opts["port"] = _int(name, value)
        elif name in _SERVE_BOOL:
            opts[name] = _bool(name, value)
        else:
            raise BadArgs(f"unknown flag: --{name}")
    if opts["http"] and (opts["tcp"] or opts["udp"]):
        raise BadArgs("Can't server TCP/UDP mode and HTTP mode at the same time")
    return opts


def _server_image(app: str, binary: str, parse, command: list[str], args: list[str]):
    """A built-in server image run with its own binary's flags: ``command`` naming that binary
    (or none) is the built-in app; any other command runs from the node's binaries."""
    argv = command + args
    if argv and argv[0].rsplit("/", 1)[-1] == binary:
        argv = argv[1:]
    elif command:
        return Process(command + args)
    try:
        return Builtin(app, parse(argv))
    except BadArgs as exc:
        return Unsupported("InvalidArgs", f"{binary}: {exc}")


_COREDNS_STR = {"conf": "Corefile", "dns.port": "53", "pidfile": ""}
_COREDNS_BOOL = {"quiet", "plugins", "version"}


def parse_coredns(argv: list[str]) -> dict:
    """CoreDNS's Go flags (-conf FILE, -dns.port N; -pidfile and -quiet accepted)."""
    opts: dict = dict(_COREDNS_STR)
    for name, value in _flags(argv, bools=_COREDNS_BOOL):
        if name == "dns.port":
            opts[name] = str(_int(name, value))
        elif name in _COREDNS_STR:
            opts[name] = value
        elif name in _COREDNS_BOOL:
            opts[name] = _bool(name, value)
        else:
            raise BadArgs(f"flag provided but not defined: -{name}")
    return opts


_INGRESS_STR = {"controller-class": "k8s.io/ingress-nginx", "ingress-class": "nginx", "publish-service": "",
                "http-port": "80", "https-port": "443", "healthz-port": "10254", "default-backend-service": ""}
_INGRESS_BOOL = {"watch-ingress-without-class": False}
# flags of the real controller that change nothing here (webhooks, leader election, nginx tuning)
_INGRESS_IGNORED = {"election-id", "configmap", "validating-webhook", "validating-webhook-certificate",
                    "validating-webhook-key", "enable-metrics", "tcp-services-configmap", "udp-services-configmap",
                    "update-status", "update-status-on-shutdown", "enable-ssl-passthrough", "v",
                    "shutdown-grace-period", "post-shutdown-grace-period", "report-node-internal-ip-address"}


def parse_ingress_nginx(argv: list[str]) -> dict:
    """ingress-nginx's flags (pflag style); ``$(VAR)`` references are expanded by the app."""
    opts: dict = dict(_INGRESS_STR, **_INGRESS_BOOL)
    for name, value in _flags(argv, bools=set(_INGRESS_BOOL) | {"enable-metrics", "update-status",
                                                                "enable-ssl-passthrough"}):
        if name in _INGRESS_STR:
            opts[name] = value
        elif name in _INGRESS_BOOL:
            opts[name] = _bool(name, value)
        elif name not in _INGRESS_IGNORED:
            raise BadArgs(f"unknown flag: --{name}")
    for name in ("http-port", "https-port", "healthz-port"):
        _int(name, opts[name])
    return opts


def _flags(argv: list[str], bools: set[str]):
    """Yield (name, value) pairs; a bool flag without ``=`` is "true" (pflag's NoOptDefVal)."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("-") or tok in ("-", "--"):
            raise BadArgs(f"unexpected argument {tok!r}")
        body = tok.lstrip("-")
        if "=" in body:
            name, value = body.split("=", 1)
        elif body in bools:
            name, value = body, "true"
        elif i + 1 < len(argv):
            name, value = body, argv[i + 1]
            i += 1
        else:
            raise BadArgs(f"flag needs an argument: --{body}")
        yield name, value
        i += 1


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadArgs(f"invalid argument {value!r} for --{name}: not an integer") from None


def _bool(name: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise BadArgs(f"invalid argument {value!r} for --{name}: not a boolean")
