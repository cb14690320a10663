"""Link accounts run together into clusters (see ``link.shared``)."""

from distillguard.link.shared import Clusters, cluster_accounts, link_accounts, shared_values

__all__ = ["Clusters", "cluster_accounts", "link_accounts", "shared_values"]
