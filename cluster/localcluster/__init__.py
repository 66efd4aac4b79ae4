"""The local Kubernetes control plane (etcd, apiserver, controller manager, scheduler
and KWOK) that the tests and the demo run against."""

from .cluster import COMPONENTS, ClusterError, ComponentHealth, LocalCluster

__all__ = ["COMPONENTS", "ClusterError", "ComponentHealth", "LocalCluster"]
