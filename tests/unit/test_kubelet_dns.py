"""The kubelet's pod resolv.conf and hosts file (netemu/agent/kubelet/dns.py), against upstream's
pkg/kubelet/network/dns/dns_test.go (v1.32) cases."""

from netemu.agent.kubelet.dns import (DNSSettings, ResolvConf, hosts_file, parse_resolv_conf,
                                      pod_resolv_conf)

HOST = parse_resolv_conf("# the node's\nnameserver 10.255.255.53\nnameserver 10.0.0.2\nsearch corp.example. lab\n"
                         "options timeout:2\n")
SETTINGS = DNSSettings(("10.96.0.10",), "cluster.local", HOST)


def pod(ns="default", **spec):
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


def test_parse_keeps_every_nameserver_and_the_last_search_and_options():
    conf = parse_resolv_conf("search a b\nnameserver 1.1.1.1\nsearch c.\nnameserver 2.2.2.2\noptions x y\n")
    assert conf == ResolvConf(("1.1.1.1", "2.2.2.2"), ("c",), ("x", "y"))


def test_cluster_first_is_the_cluster_dns_with_the_namespace_searches_first():
    conf, warnings = pod_resolv_conf(pod("shop"), SETTINGS)
    assert conf.render() == ("search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab\n"
                             "nameserver 10.96.0.10\noptions ndots:5\n")
    assert warnings == []


def test_host_network_cluster_first_falls_back_to_the_node_but_with_host_net_keeps_the_cluster():
    assert pod_resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirst"), SETTINGS)[0] == HOST
    conf, _ = pod_resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), SETTINGS)
    assert conf.nameservers == ("10.96.0.10",)


def test_default_is_the_node_file_and_none_is_only_dns_config():
    assert pod_resolv_conf(pod(dnsPolicy="Default"), SETTINGS)[0] == HOST
    conf, _ = pod_resolv_conf(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.2.3.4"], "searches": ["my.dns.search.suffix"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}), SETTINGS)
    assert conf == ResolvConf(("1.2.3.4",), ("my.dns.search.suffix",), ("ndots:2", "edns0"))


def test_dns_config_is_appended_without_duplicates_and_its_options_win():
    conf, _ = pod_resolv_conf(pod(dnsConfig={"nameservers": ["10.96.0.10", "8.8.8.8"],
                                             "searches": ["svc.cluster.local", "extra"],
                                             "options": [{"name": "ndots", "value": "1"}]}), SETTINGS)
    assert conf.nameservers == ("10.96.0.10", "8.8.8.8")
    assert conf.searches[-1] == "extra" and conf.searches.count("svc.cluster.local") == 1
    assert conf.options == ("ndots:1",)


def test_without_a_cluster_dns_cluster_first_falls_back_to_default_with_a_warning():
    conf, warnings = pod_resolv_conf(pod(), DNSSettings((), "cluster.local", HOST))
    assert conf == HOST and "Falling back" in warnings[0]


def test_limits_drop_what_does_not_fit_and_say_so():
    many = [f"d{i}.example" for i in range(40)]
    conf, warnings = pod_resolv_conf(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"], "searches": many}), SETTINGS)
    assert conf.nameservers == ("1.1.1.1", "2.2.2.2", "3.3.3.3") and len(conf.searches) == 32
    assert any(w.startswith("Nameserver limits were exceeded") for w in warnings)
    assert any(w.startswith("Search Line limits were exceeded") for w in warnings)


def test_hosts_file_names_the_pod_fully_with_a_subdomain_and_adds_host_aliases():
    text = hosts_file(pod("db", subdomain="mysql", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]),
                      "10.244.1.5", "db-0")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.244.1.5\tdb-0.mysql.db.svc.cluster.local\tdb-0\n" in text
    assert text.endswith("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n")
    assert "10.244.1.5\tweb\n" in hosts_file(pod(), "10.244.1.5", "web")
