"""Writes charts/rising-stars/values.schema.json (run: python charts/values_schema.py).

The schema is kept as Python so shared shapes (component, autoscaling, peers) are written once;
check.sh fails when the committed JSON differs from what this script produces.
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "rising-stars" / "values.schema.json"


def obj(properties, required=(), extra=False, **kw):
    schema = {"type": "object", "properties": properties, "additionalProperties": extra, **kw}
    if required:
        schema["required"] = list(required)
    return schema


STR = {"type": "string"}
BOOL = {"type": "boolean"}
ANY_OBJ = {"type": "object"}
ANY_LIST = {"type": "array"}
POS_INT = {"type": "integer", "minimum": 1}
NONNEG_INT = {"type": "integer", "minimum": 0}
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
QUANTITY = {"type": ["string", "integer", "number"]}
URL = {"type": "string", "pattern": "^https?://"}
OPT_URL = {"type": "string", "pattern": "^(https?://.*)?$"}
RATIO = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
SECONDS = {"type": "number", "exclusiveMinimum": 0}
# A Prometheus duration (`for:`, range windows).
DURATION = {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d|w)$"}
BURN_RATES = obj(
    {
        "severity": STR,
        "windows": {
            "type": "array",
            "minItems": 1,
            "items": obj(
                {"long": DURATION, "short": DURATION, "factor": SECONDS},
                ["long", "short", "factor"],
            ),
        },
    },
    ["severity", "windows"],
)
PORTS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1, "maximum": 65535},
    "minItems": 1,
}
PEERS = {"type": "array", "items": ANY_OBJ}
CIDR = {"type": "string", "pattern": "^[0-9a-fA-F:.]+/[0-9]+$"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
SIZE = {"type": "string", "pattern": "^[0-9]+(Ki|Mi|Gi)$"}
SERVICE_ACCOUNT = obj({"create": BOOL, "name": STR, "annotations": STR_MAP}, ["create"])
PROBE_TIMING = obj(
    {
        "initialDelaySeconds": NONNEG_INT,
        "periodSeconds": POS_INT,
        "timeoutSeconds": POS_INT,
        "successThreshold": POS_INT,
        "failureThreshold": POS_INT,
    }
)
PROBES = obj({"startup": PROBE_TIMING, "liveness": PROBE_TIMING, "readiness": PROBE_TIMING})
STRATEGY = obj(
    {"type": {"enum": ["RollingUpdate", "Recreate"]}, "rollingUpdate": ANY_OBJ}, ["type"]
)
# What a workload's Deployment takes from workloadDefaults unless the component overrides it.
WORKLOAD_SHAPE = {
    "containerPort": PORT,
    "revisionHistoryLimit": NONNEG_INT,
    "strategy": STRATEGY,
    "probes": PROBES,
}

RESOURCES = obj(
    {
        "requests": {
            "type": "object",
            "additionalProperties": QUANTITY,
            "required": ["cpu", "memory"],
        },
        "limits": {
            "type": "object",
            "additionalProperties": QUANTITY,
            "required": ["cpu", "memory"],
        },
    },
    required=["requests", "limits"],
)

IMAGE = obj(
    {
        "repository": {"type": "string", "minLength": 1},
        "tag": STR,
        "digest": {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"},
    },
    required=["repository"],
)

HPA = obj(
    {
        "enabled": BOOL,
        "minReplicas": POS_INT,
        "maxReplicas": POS_INT,
        "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
        "requestsPerSecond": obj(
            {
                "enabled": BOOL,
                "metricName": {"type": "string", "minLength": 1},
                "averageValue": QUANTITY,
            }
        ),
        "behavior": ANY_OBJ,
    },
    required=["enabled", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"],
)

PROCESSOR_SCALING = obj(
    {
        "mode": {"enum": ["hpa", "keda", "operator", "none"]},
        "minReplicas": NONNEG_INT,
        "maxReplicas": POS_INT,
        "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
        "behavior": ANY_OBJ,
        "keda": obj(
            {
                "queueLength": POS_INT,
                "activationQueueLength": NONNEG_INT,
                "scaleOnInFlight": BOOL,
                "scaleOnDelayed": BOOL,
                "pollingInterval": POS_INT,
                "cooldownPeriod": NONNEG_INT,
                "scaleDownStabilizationWindowSeconds": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 3600,
                },
                "roleArn": {
                    "type": "string",
                    "pattern": "^(arn:aws[a-z-]*:iam::[0-9]{12}:role/.+)?$",
                },
            }
        ),
        # The QueueScaler spec (crds/queuescaler.yaml); owned by the operator issue.
        "operator": obj(
            {
                "targetBacklogPerReplica": POS_INT,
                "countInFlight": BOOL,
                "countDelayed": BOOL,
                "activationBacklog": NONNEG_INT,
                "scaleDownStabilizationSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                "cooldownSeconds": NONNEG_INT,
                "pollingIntervalSeconds": {"type": "integer", "minimum": 1, "maximum": 3600},
                "busyPodProtection": obj({"enabled": BOOL, "maxJobSeconds": NONNEG_INT}),
            }
        ),
    },
    required=["mode", "minReplicas", "maxReplicas"],
)


def component(settings, scaling, **extra):
    """A service's Deployment; settings None: it runs another component's image and settings."""
    properties = {"image": IMAGE, "settings": settings} if settings else {}
    return obj(
        {
            "replicaCount": POS_INT,
            "autoscaling": scaling,
            "podDisruptionBudget": obj({"maxUnavailable": {"type": ["integer", "string"]}}),
            "resources": RESOURCES,
            "tmpSizeLimit": SIZE,
            # The one drain knob (SHUTDOWN_TIMEOUT_SECONDS); the grace period is derived.
            "shutdownSeconds": POS_INT,
            "serviceAccount": SERVICE_ACCOUNT,
            "service": obj({"port": PORT, "annotations": STR_MAP}),
            **WORKLOAD_SHAPE,
            "podSecurityContext": ANY_OBJ,
            "securityContext": ANY_OBJ,
            "podAnnotations": STR_MAP,
            "nodeSelector": STR_MAP,
            "tolerations": ANY_LIST,
            "affinity": ANY_OBJ,
            "topologySpreadConstraints": ANY_LIST,
            "extraEnv": {
                "type": "array",
                "items": obj({"name": STR, "value": STR, "valueFrom": ANY_OBJ}, ["name"]),
            },
            **properties,
            **extra,
        },
        required=[
            "replicaCount",
            "autoscaling",
            "resources",
            "tmpSizeLimit",
            "shutdownSeconds",
            "serviceAccount",
            *properties,
            *extra,
        ],
    )


AUTH_SETTINGS = obj(
    {
        "dbPoolSize": POS_INT,
        "accessTokenTtlSeconds": POS_INT,
        "refreshTokenTtlSeconds": POS_INT,
        "loginMaxFailures": POS_INT,
        "loginMaxFailuresPerIp": POS_INT,
        "loginWindowSeconds": POS_INT,
        "passwordMinLength": {"type": "integer", "minimum": 8},
    },
    required=[
        "dbPoolSize",
        "accessTokenTtlSeconds",
        "refreshTokenTtlSeconds",
        "loginMaxFailures",
        "loginMaxFailuresPerIp",
        "loginWindowSeconds",
        "passwordMinLength",
    ],
)

UPLOAD_SETTINGS = obj(
    {
        "dbPoolSize": POS_INT,
        "maxUploadBytes": POS_INT,
        "minDurationSeconds": POS_INT,
        "maxDurationSeconds": POS_INT,
        "minShortSidePx": POS_INT,
        "presignTtlSeconds": POS_INT,
        "rankingsCacheSeconds": NONNEG_INT,
        "spillBytes": POS_INT,
        "idleSeconds": POS_INT,
        "deadlineSeconds": POS_INT,
        "maxPerUser": POS_INT,
    },
    required=[
        "dbPoolSize",
        "maxUploadBytes",
        "minDurationSeconds",
        "maxDurationSeconds",
        "minShortSidePx",
        "presignTtlSeconds",
        "rankingsCacheSeconds",
        "spillBytes",
        "idleSeconds",
        "deadlineSeconds",
        "maxPerUser",
    ],
)

PROCESSOR_SETTINGS = obj(
    {"concurrency": POS_INT, "maxAttempts": POS_INT, "ffmpegPath": STR},
    required=["concurrency", "maxAttempts"],
)

SCHEMA = obj(
    {
        "nameOverride": STR,
        "fullnameOverride": STR,
        "commonLabels": STR_MAP,
        "image": obj(
            {
                "registry": STR,
                "tag": STR,
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
            required=["pullPolicy"],
        ),
        "imagePullSecrets": {"type": "array", "items": obj({"name": STR}, ["name"])},
        "config": obj(
            {
                "logLevel": {"enum": ["debug", "info", "warning", "error", "critical"]},
                "drainSeconds": NONNEG_INT,
                "exitHeadroomSeconds": NONNEG_INT,
                "keepaliveSeconds": POS_INT,
                "forwardedAllowIps": {"type": "string", "minLength": 1},
                "jwt": obj(
                    {
                        "issuer": {"type": "string", "minLength": 1},
                        "audience": {"type": "string", "minLength": 1},
                    },
                    ["issuer", "audience"],
                ),
            },
            required=[
                "logLevel",
                "drainSeconds",
                "exitHeadroomSeconds",
                "keepaliveSeconds",
                "forwardedAllowIps",
                "jwt",
            ],
        ),
        "aws": obj(
            {
                "region": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$"},
                "endpointUrl": OPT_URL,
                "credentialsSecret": STR,
                "s3Bucket": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"},
                "jobsQueueUrl": URL,
                "deadLetterQueueUrl": URL,
                "eventsQueueUrl": URL,
            },
            required=["region", "s3Bucket", "jobsQueueUrl", "deadLetterQueueUrl", "eventsQueueUrl"],
        ),
        "database": obj(
            {
                "url": {"type": "string", "pattern": "^(postgres(ql)?://.*)?$"},
                "existingSecret": STR,
                "authUrlKey": {"type": "string", "minLength": 1},
                "uploadUrlKey": {"type": "string", "minLength": 1},
            },
            required=["authUrlKey", "uploadUrlKey"],
        ),
        "migrations": obj(
            {
                "enabled": BOOL,
                "backoffLimit": NONNEG_INT,
                "activeDeadlineSeconds": POS_INT,
                "ttlSecondsAfterFinished": NONNEG_INT,
                "resources": RESOURCES,
            },
            required=["enabled", "resources"],
        ),
        "securityContext": obj(
            {
                "runAsUser": {"type": "integer", "minimum": 10000},
                "runAsGroup": {"type": "integer", "minimum": 10000},
            },
            required=["runAsUser", "runAsGroup"],
        ),
        "networkPolicy": obj(
            {
                "enabled": BOOL,
                "defaultDeny": BOOL,
                "ingressControllerPeers": PEERS,
                "metricsScraperPeers": PEERS,
                "dns": obj({"peers": PEERS}, ["peers"]),
                "database": obj({"peers": PEERS, "ports": PORTS}, ["peers", "ports"]),
                "aws": obj({"peers": PEERS, "ports": PORTS}, ["peers", "ports"]),
            },
            required=["enabled"],
        ),
        # OpenTelemetry: the collector's OTLP/HTTP endpoint and the egress to it.
        "tracing": obj(
            {
                "otlpEndpoint": OPT_URL,
                "egress": obj({"peers": PEERS, "ports": PORTS}, ["peers", "ports"]),
            }
        ),
        "ingress": obj(
            {
                "enabled": BOOL,
                "className": STR,
                "annotations": STR_MAP,
                "host": STR,
                "tls": {"type": "array", "items": ANY_OBJ},
                # The ALB's subnets: one list for the subnets annotation, the API pods' peers
                # and the trusted proxies (templates/_helpers.tpl).
                "alb": obj(
                    {
                        "subnets": {
                            "type": "array",
                            "items": obj(
                                {"id": {"type": "string", "minLength": 1}, "cidr": CIDR},
                                ["id", "cidr"],
                            ),
                        }
                    }
                ),
            },
            required=["enabled"],
        ),
        "auth": component(
            AUTH_SETTINGS,
            HPA,
            signingKeys=obj(
                {"existingSecret": STR, "mountPath": {"type": "string", "pattern": "^/"}},
                required=["mountPath"],
            ),
        ),
        "workloadDefaults": obj(WORKLOAD_SHAPE, list(WORKLOAD_SHAPE)),
        "upload": component(
            UPLOAD_SETTINGS, HPA, jwksUrl=OPT_URL, mediaBaseUrl=OPT_URL, spillSizeLimit=SIZE
        ),
        # Same image as upload: no image of its own.
        "uploadWorker": component(None, HPA),
        "processor": component(PROCESSOR_SETTINGS, PROCESSOR_SCALING),
        "web": component(obj({"mediaSources": STR}, ["mediaSources"]), HPA),
        # The operator's Deployment; owned by the operator issue.
        "operator": obj(
            {
                "image": IMAGE,
                "metricsPort": PORT,
                "healthPort": PORT,
                "resources": RESOURCES,
                "tmpSizeLimit": SIZE,
                "terminationGracePeriodSeconds": POS_INT,
                "serviceAccount": SERVICE_ACCOUNT,
                "admissionPolicy": obj({"enabled": BOOL}, ["enabled"]),
                "service": obj({"port": PORT, "annotations": STR_MAP}),
                "podSecurityContext": ANY_OBJ,
                "securityContext": ANY_OBJ,
                "apiServer": obj({"peers": PEERS, "ports": PORTS}, ["peers", "ports"]),
                "podAnnotations": STR_MAP,
                "nodeSelector": STR_MAP,
                "tolerations": ANY_LIST,
                "affinity": ANY_OBJ,
                "extraEnv": ANY_LIST,
            }
        ),
        "metrics": obj(
            {
                "serviceMonitor": obj(
                    {"enabled": BOOL, "interval": STR, "labels": STR_MAP}, ["enabled"]
                ),
                "prometheusRule": obj(
                    {
                        "enabled": BOOL,
                        "labels": STR_MAP,
                        "errorRatio": RATIO,
                        "slo": obj(
                            {
                                "uploadAvailability": obj({"objective": RATIO}, ["objective"]),
                                "apiLatency": obj(
                                    {"objective": RATIO, "thresholdSeconds": SECONDS},
                                    ["objective", "thresholdSeconds"],
                                ),
                                "timeToPlayable": obj(
                                    {"objective": RATIO, "thresholdSeconds": SECONDS},
                                    ["objective", "thresholdSeconds"],
                                ),
                            },
                            ["uploadAvailability", "apiLatency", "timeToPlayable"],
                        ),
                        "burnRates": obj(
                            {"fast": BURN_RATES, "slow": BURN_RATES}, ["fast", "slow"]
                        ),
                        "queue": obj(
                            {
                                "oldestJobAgeSeconds": POS_INT,
                                "oldestJobAgeFor": DURATION,
                                "deadLetterFor": DURATION,
                                "seriesMissingFor": DURATION,
                            },
                            [
                                "oldestJobAgeSeconds",
                                "oldestJobAgeFor",
                                "deadLetterFor",
                                "seriesMissingFor",
                            ],
                        ),
                    },
                    ["enabled"],
                ),
                "dashboard": obj({"enabled": BOOL, "labels": STR_MAP}, ["enabled"]),
            }
        ),
        "tests": obj({"enabled": BOOL}, ["enabled"]),
        # Helm passes the parent chart's globals down; accept them.
        "global": ANY_OBJ,
    },
    required=[
        "image",
        "config",
        "aws",
        "database",
        "workloadDefaults",
        "auth",
        "upload",
        "uploadWorker",
        "processor",
        "web",
    ],
    **{
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rising-stars chart values",
    },
)


def render():
    return json.dumps(SCHEMA, indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text() != render():
            sys.exit(f"{OUT} is stale: run python charts/values_schema.py")
    else:
        OUT.write_text(render())
