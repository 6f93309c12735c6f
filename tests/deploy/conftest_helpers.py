"""What tests/deploy's fixtures share with its tests."""

OIDC = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
STACK = "rising-stars"
