"""The rendered NetworkPolicies checked against the connections a boot actually made (through
the Services, to the external endpoints, from the ingress): each must be allowed by the egress
policies selecting its source and the ingress policies selecting its destination, as a
policy-enforcing CNI would decide. Connections nothing made (DNS: pods here resolve from hosts
files; the operator to the API server) are not judged."""

from __future__ import annotations

import dataclasses
import ipaddress

from risingstars.dev.chartboot.manifests import matches


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    ip: str
    namespace: str | None = None  # None: outside the cluster (an address only)
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[str, int], ...] = ()  # named container ports

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def _selects(selector: dict | None, labels: dict) -> bool:
    """A NetworkPolicy's label selector: empty selects everything."""
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return True
    return matches(selector, labels)


def _peer_matches(rule_peer: dict, peer: Peer, policy_ns: str) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        addr = ipaddress.ip_address(peer.ip)
        if addr not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(addr in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        ns_labels = {"kubernetes.io/metadata.name": peer.namespace}
        if not _selects(rule_peer["namespaceSelector"], ns_labels):
            return False
    elif peer.namespace != policy_ns:
        return False
    return _selects(rule_peer.get("podSelector"), peer.label_dict)


def _port_matches(rule_ports: list | None, port: int, dst: Peer) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, str) and not want.isdigit():
            want = dict(dst.ports).get(want)
        if want is not None and int(want) <= port <= int(p.get("endPort", want)):
            return True
    return False


def _types(policy: dict) -> set[str]:
    spec = policy["spec"]
    return set(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else [])))


def denied(policies: list[dict], src: Peer, dst: Peer, port: int) -> str | None:
    """Why the connection src -> dst:port would be dropped, or None when it is allowed."""
    for direction, subject, other, key, field in (
        ("Egress", src, dst, "egress", "to"),
        ("Ingress", dst, src, "ingress", "from"),
    ):
        if subject.namespace is None:
            continue
        selecting = [
            p
            for p in policies
            if p["metadata"].get("namespace", subject.namespace) == subject.namespace
            and direction in _types(p)
            and _selects(p["spec"].get("podSelector"), subject.label_dict)
        ]
        if not selecting:
            continue
        allowed = any(
            (
                not rule.get(field)
                or any(_peer_matches(x, other, subject.namespace) for x in rule[field])
            )
            and _port_matches(rule.get("ports"), port, dst)
            for p in selecting
            for rule in p["spec"].get(key) or []
        )
        if not allowed:
            names = ", ".join(p["metadata"]["name"] for p in selecting)
            return f"the {direction.lower()} of {subject.name} (NetworkPolicy {names}) allows none"
    return None
