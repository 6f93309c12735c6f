"""chart-boot: the rendered Helm chart run on one machine, as a cluster would run it.

Each pod gets its own network namespace, IP and hosts file; each container runs the local
install of its image's service with exactly the command, arguments and environment the
manifests give it; probes, hooks, Services, the Ingress and pod deletion follow the manifests.
docs/chart-boot.md says what this proves and what only a real cluster proves.
"""
