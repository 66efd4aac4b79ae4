"""Leader election settings: pure decisions, no I/O beyond reading what is given.

The timings are controller-runtime's defaults (``LeaseDuration`` 15 s, ``RenewDeadline``
10 s, ``RetryPeriod`` 2 s). The leader renews every retry period; it stops writing when
a renewal has not succeeded for ``renew_deadline``; another candidate takes over once it
has seen no renewal for ``lease_duration``. So ``renew_deadline < lease_duration`` is what
keeps two replicas from ever writing at once, and ``retry_period`` must leave room for a
few renewals within the deadline.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_LEASE_NAME = "shard-operator-leader"
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
# A standby waits up to 1.2 retry periods between attempts (client-go's jitter): the renew
# deadline must leave room for more than that.
JITTER = 1.2
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD


def timing_error(lease_duration: float, renew_deadline: float, retry_period: float
                 ) -> str | None:
    """Why these timings cannot work (None if they can)."""
    if min(lease_duration, renew_deadline, retry_period) < 1:
        return "--lease-duration, --renew-deadline and --retry-period must be at least 1 s"
    if renew_deadline >= lease_duration:
        return (f"--renew-deadline ({renew_deadline:g} s) must be shorter than "
                f"--lease-duration ({lease_duration:g} s): a replica must stop writing "
                "before another may take the lease")
    if retry_period >= renew_deadline:
        return (f"--retry-period ({retry_period:g} s) must be shorter than "
                f"--renew-deadline ({renew_deadline:g} s)")
    if renew_deadline <= JITTER * retry_period:
        return (f"--renew-deadline ({renew_deadline:g} s) must exceed {JITTER:g} x "
                f"--retry-period ({retry_period:g} s)")
    return None


def pod_namespace(env: Mapping[str, str], service_account_file: str | None) -> str | None:
    """The namespace of the pod this runs in: ``POD_NAMESPACE`` (the downward API), else
    the service account's namespace file; None outside a pod."""
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    if service_account_file:
        return service_account_file.strip() or None
    return None


def lease_namespace(flag: str | None, watched: Sequence[str], in_pod: str | None
                    ) -> str | None:
    """Where the Lease lives: an explicit ``--leader-election-namespace``; else, in a pod,
    the pod's namespace; else the first watched namespace. None when none applies (a
    local ``--all-namespaces`` run without the flag)."""
    if flag:
        return flag
    if in_pod:
        return in_pod
    return watched[0] if watched else None


def identity(env: Mapping[str, str], hostname: str | None = None,
             unique: str | None = None) -> str:
    """``<pod name or hostname>_<uuid>`` (as client-go's): unique per process, so a
    restarted pod never mistakes its predecessor's lease for its own."""
    host = env.get("POD_NAME") or hostname or socket.gethostname()
    return f"{host}_{unique or uuid.uuid4()}"


def read_service_account_namespace(path: str = SERVICE_ACCOUNT_NAMESPACE) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError:
        return None


def resolve(*, name: str, flag_namespace: str | None, watched: Sequence[str],
            lease_duration: float, renew_deadline: float, retry_period: float,
            env: Mapping[str, str] | None = None,
            service_account_file: str | None = None) -> ElectionConfig:
    """The election of this process, or ValueError with what to change."""
    env = os.environ if env is None else env
    problem = timing_error(lease_duration, renew_deadline, retry_period)
    if problem:
        raise ValueError(problem)
    namespace = lease_namespace(flag_namespace, watched, pod_namespace(env, service_account_file))
    if namespace is None:
        raise ValueError("give --leader-election-namespace: outside a pod, with "
                         "--all-namespaces, no namespace is there for the Lease")
    return ElectionConfig(name=name, namespace=namespace, identity=identity(env),
                          lease_duration=lease_duration, renew_deadline=renew_deadline,
                          retry_period=retry_period)
