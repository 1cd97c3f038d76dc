"""A pod's resolv.conf and /etc/hosts, as the kubelet forms them (pure).

Ported from upstream's pkg/kubelet/network/dns/dns.go (v1.32, GetPodDNS) and the kubelet's
managed hosts file (pkg/kubelet/kubelet_pods.go, managedHostsFileContent):

- dnsPolicy ClusterFirst (the default): nameserver = the cluster DNS Service (--cluster-dns,
  10.96.0.10), search ``<ns>.svc.<domain> svc.<domain> <domain>`` followed by the node's own
  search domains, ``options ndots:5``. A hostNetwork pod with ClusterFirst falls back to Default;
  ClusterFirstWithHostNet keeps the cluster DNS. Without a cluster DNS configured, ClusterFirst
  falls back to Default (upstream's MissingClusterDNS).
- Default: the node's resolv.conf (--resolv-conf) as it is.
- None: only what spec.dnsConfig gives.
- spec.dnsConfig is then appended: nameservers and searches without duplicates, options
  merged by name (the pod's value wins). Limits as upstream (ExpandedDNSConfig, GA in 1.28):
  3 nameservers, 32 search domains and 2048 characters; what does not fit is dropped with a
  warning the caller turns into a DNSConfigForming event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_CLUSTER_DNS = ("10.96.0.10",)
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_OPTIONS = ("ndots:5",)
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN = 253            # a search path longer than a DNS-1123 subdomain is dropped


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        """The file, in the order container runtimes write it (search, nameserver, options)."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DNSSettings:
    """The kubelet's --cluster-dns, --cluster-domain and the node's resolv.conf (parsed)."""

    cluster_dns: tuple[str, ...] = DEFAULT_CLUSTER_DNS
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    host: ResolvConf = field(default_factory=ResolvConf)


def parse_resolv_conf(text: str) -> ResolvConf:
    """Upstream's parseResolvConf: nameservers accumulate, the last search and options lines win."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields_ = line.strip().split()
        if not fields_ or fields_[0].startswith("#"):
            continue
        if fields_[0] == "nameserver" and len(fields_) >= 2:
            servers.append(fields_[1])
        elif fields_[0] == "search":
            searches = [s.removesuffix(".") for s in fields_[1:]]
        elif fields_[0] == "options":
            options = fields_[1:]
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def merge_options(existing, extra: list[dict]) -> tuple[str, ...]:
    """Options by name, spec.dnsConfig.options overriding (``{"name": n, "value": v}``)."""
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for op in extra:
        if op.get("name"):
            merged[op["name"]] = "" if op.get("value") is None else str(op["value"])
    return tuple(f"{k}:{v}" if v else k for k, v in merged.items())


def dns_type(pod: dict) -> str:
    """"cluster", "host" or "none" for the pod's dnsPolicy (upstream's getPodDNSType)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst" and not spec.get("hostNetwork"):
        return "cluster"
    return "host"


def fit_limits(conf: ResolvConf) -> tuple[ResolvConf, list[str]]:
    """Drop what exceeds upstream's limits; the warnings say what was applied."""
    warnings = []
    servers = conf.nameservers
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, the applied "
                        f"nameserver line is: {' '.join(servers)}")
    searches = list(conf.searches)
    exceeded = len(searches) > MAX_SEARCH_PATHS
    searches = [s for s in searches[:MAX_SEARCH_PATHS] if len(s) <= MAX_DOMAIN]
    exceeded = exceeded or len(searches) < min(len(conf.searches), MAX_SEARCH_PATHS)
    while searches and len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
        exceeded = True
    if exceeded:
        warnings.append("Search Line limits were exceeded, some search paths have been omitted, the "
                        f"applied search line is: {' '.join(searches)}")
    return ResolvConf(servers, tuple(searches), conf.options), warnings


def pod_resolv_conf(pod: dict, settings: DNSSettings) -> tuple[ResolvConf, list[str]]:
    """The pod's resolv.conf and the DNSConfigForming / MissingClusterDNS warnings."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    kind = dns_type(pod)
    warnings: list[str] = []
    conf = settings.host
    if kind == "none":
        conf = ResolvConf()
    elif kind == "cluster" and settings.cluster_dns:
        domain = settings.cluster_domain
        searches = settings.host.searches
        if domain:
            ns = meta.get("namespace") or "default"
            searches = _unique((f"{ns}.svc.{domain}", f"svc.{domain}", domain, *searches))
        conf = ResolvConf(tuple(settings.cluster_dns), tuple(searches), DEFAULT_OPTIONS)
    elif kind == "cluster":
        warnings.append('kubelet does not have ClusterDNS IP configured and cannot create Pod using '
                        '"ClusterFirst" policy. Falling back to "Default" policy.')
    extra = spec.get("dnsConfig") or {}
    if extra:
        conf = ResolvConf(_unique((*conf.nameservers, *(extra.get("nameservers") or []))),
                          _unique((*conf.searches, *(extra.get("searches") or []))),
                          merge_options(conf.options, extra.get("options") or []))
    conf, more = fit_limits(conf)
    return conf, warnings + more


HOSTS_HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


def hosts_file(pod: dict, pod_ip: str, hostname: str, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """The kubelet-managed /etc/hosts of a pod with its own network namespace: localhost lines,
    the pod's IP with its hostname (fully qualified first when spec.subdomain is set), then
    spec.hostAliases."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    text = HOSTS_HEADER
    if spec.get("subdomain") and cluster_domain:
        fqdn = f"{hostname}.{spec['subdomain']}.{meta.get('namespace') or 'default'}.svc.{cluster_domain}"
        text += f"{pod_ip}\t{fqdn}\t{hostname}\n"
    else:
        text += f"{pod_ip}\t{hostname}\n"
    aliases = spec.get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for alias in aliases:
            names = "\t".join(alias.get("hostnames") or [])
            if alias.get("ip") and names:
                text += f"{alias['ip']}\t{names}\n"
    return text
