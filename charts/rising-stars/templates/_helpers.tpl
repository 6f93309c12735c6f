{{/* Names, labels and the pieces every workload shares. */}}

{{- define "rising-stars.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rising-stars.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<component>. Args: root, component. */}}
{{- define "rising-stars.componentName" -}}
{{- printf "%s-%s" (include "rising-stars.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rising-stars.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component. Args: root, component. */}}
{{- define "rising-stars.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rising-stars.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of a component's objects. Args: root, component. */}}
{{- define "rising-stars.labels" -}}
helm.sh/chart: {{ include "rising-stars.chart" .root }}
{{ include "rising-stars.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: rising-stars
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Standard metadata (name, namespace, labels) of a component's object. Args: root, component, name (optional suffix). */}}
{{- define "rising-stars.metadata" -}}
name: {{ if .name }}{{ printf "%s-%s" (include "rising-stars.componentName" .) .name | trunc 63 | trimSuffix "-" }}{{ else }}{{ include "rising-stars.componentName" . }}{{ end }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "rising-stars.labels" . | nindent 2 }}
{{- end }}

{{/*
Values key of a component: its name in camelCase (upload-worker -> uploadWorker). Args: component.
*/}}
{{- define "rising-stars.valuesKey" -}}
{{- .component | replace "-" "_" | camelcase | untitle }}
{{- end }}

{{/*
Image reference of a component: <registry>/<repository>:<tag>[@<digest>]. A component without
an image of its own (the upload worker) names the component whose image it runs in `image`.
Args: root, component, image (optional).
*/}}
{{- define "rising-stars.image" -}}
{{- $img := (index .root.Values (.image | default (include "rising-stars.valuesKey" .))).image }}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- $repo := $img.repository }}
{{- with .root.Values.image.registry | trimSuffix "/" }}{{ $repo = printf "%s/%s" . $repo }}{{ end }}
{{- $ref := printf "%s:%s" $repo $tag }}
{{- if $img.digest }}{{ $ref = printf "%s@%s" $ref $img.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{/*
checkov skips that only apply to some configurations, each justified. Rendered as annotations
on the object they concern, keyed by the check they skip (checkov reads any checkov.io/skip*
key), so a template can add its own without knowing which others are present.
Args: root, component, image (optional), secretEnv (bool).
*/}}
{{- define "rising-stars.checkovSkips" -}}
{{- $img := (index .root.Values (.image | default (include "rising-stars.valuesKey" .))).image }}
{{- if not $img.digest }}
{{ include "rising-stars.checkovSkip" (list "CKV_K8S_43" (printf "Images are built per commit and pinned by an immutable content tag; set %s.image.digest to pin by digest." (.image | default (include "rising-stars.valuesKey" .)))) }}
{{- end }}
{{- if ne .root.Values.image.pullPolicy "Always" }}
{{ include "rising-stars.checkovSkip" (list "CKV_K8S_15" "Tags are immutable per build and kind side-loads images that no registry serves; values-eks.yaml uses Always.") }}
{{- end }}
{{- if .secretEnv }}
{{ include "rising-stars.checkovSkip" (list "CKV_K8S_35" "The services read DATABASE_URL and emulator credentials from the environment (docs/conventions.md); the Secret reaches only this container.") }}
{{- end }}
{{- end }}

{{/* One checkov skip annotation. Args: (list check reason). */}}
{{- define "rising-stars.checkovSkip" -}}
checkov.io/skip-{{ index . 0 | lower | replace "_" "-" }}: {{ printf "%s=%s" (index . 0) (index . 1) | quote }}
{{- end }}

{{/* Pod-level securityContext: the hardened defaults, then the component's overrides. Args: root, values (optional). */}}
{{- define "rising-stars.podSecurityContext" -}}
{{- $base := dict
  "runAsNonRoot" true
  "runAsUser" .root.Values.securityContext.runAsUser
  "runAsGroup" .root.Values.securityContext.runAsGroup
  "fsGroup" .root.Values.securityContext.runAsGroup
  "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- toYaml (mergeOverwrite $base (deepCopy ((.values | default dict).podSecurityContext | default dict))) }}
{{- end }}

{{/* Container securityContext: the hardened defaults, then the component's overrides. Args: root, values (optional). */}}
{{- define "rising-stars.containerSecurityContext" -}}
{{- $base := dict
  "runAsNonRoot" true
  "runAsUser" .root.Values.securityContext.runAsUser
  "runAsGroup" .root.Values.securityContext.runAsGroup
  "allowPrivilegeEscalation" false
  "privileged" false
  "readOnlyRootFilesystem" true
  "capabilities" (dict "drop" (list "ALL"))
  "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- toYaml (mergeOverwrite $base (deepCopy ((.values | default dict).securityContext | default dict))) }}
{{- end }}

{{/* Environment every service reads. Args: root, component. */}}
{{- define "rising-stars.commonEnv" -}}
{{- $c := index .root.Values (include "rising-stars.valuesKey" .) }}
- name: LOG_LEVEL
  value: {{ .root.Values.config.logLevel | quote }}
- name: PORT
  value: {{ include "rising-stars.containerPort" . | quote }}
- name: DRAIN_SECONDS
  value: {{ .root.Values.config.drainSeconds | int64 | quote }}
- name: SHUTDOWN_TIMEOUT_SECONDS
  value: {{ $c.shutdownSeconds | int64 | quote }}
- name: KEEPALIVE_SECONDS
  value: {{ .root.Values.config.keepaliveSeconds | int64 | quote }}
- name: FORWARDED_ALLOW_IPS
  value: {{ include "rising-stars.forwardedAllowIps" .root | quote }}
{{- end }}

{{/* Where the services that trace (kit.tracing: auth, upload, upload-worker, processor) send
their spans: only when tracing.otlpEndpoint is set. Starts with a newline (callers trim before it)
so nothing, not even a blank line, is rendered without it. Args: root. */}}
{{- define "rising-stars.tracingEnv" -}}
{{- with .root.Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* AWS settings for services that talk to S3/SQS. Args: root. */}}
{{- define "rising-stars.awsEnv" -}}
- name: AWS_REGION
  value: {{ .root.Values.aws.region | quote }}
{{- with .root.Values.aws.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: S3_BUCKET
  value: {{ .root.Values.aws.s3Bucket | quote }}
- name: JOBS_QUEUE_URL
  value: {{ .root.Values.aws.jobsQueueUrl | quote }}
- name: EVENTS_QUEUE_URL
  value: {{ .root.Values.aws.eventsQueueUrl | quote }}
{{- end }}

{{/* Token settings shared by the issuer (auth) and the verifiers (upload). Args: root. */}}
{{- define "rising-stars.jwtEnv" -}}
- name: JWT_ISSUER
  value: {{ .root.Values.config.jwt.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ .root.Values.config.jwt.audience | quote }}
{{- end }}

{{/* Emulator credentials (never used on AWS, where IRSA provides them). Args: root. */}}
{{- define "rising-stars.awsCredentialsEnvFrom" -}}
{{- with .root.Values.aws.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding DATABASE_URL(s). */}}
{{- define "rising-stars.databaseSecret" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "rising-stars.fullname" .)) }}
{{- end }}

{{/* Name of the Secret holding the auth signing keys. */}}
{{- define "rising-stars.signingKeysSecret" -}}
{{- .Values.auth.signingKeys.existingSecret | default (printf "%s-auth-signing-keys" (include "rising-stars.fullname" .)) }}
{{- end }}

{{/*
True ("true") when a scaler owns the component's replica count: autoscaling.enabled, or for an
autoscaling block with a mode (the processor's hpa/keda/operator), any mode but none.
Args: root, component.
*/}}
{{- define "rising-stars.scaled" -}}
{{- $a := (index .root.Values (include "rising-stars.valuesKey" .)).autoscaling }}
{{- if hasKey $a "mode" }}{{ if ne $a.mode "none" }}true{{ end }}{{ else if $a.enabled }}true{{ end }}
{{- end }}

{{/* Lowest replica count a component runs with. Args: root, component. */}}
{{- define "rising-stars.minReplicas" -}}
{{- $c := index .root.Values (include "rising-stars.valuesKey" .) }}
{{- if include "rising-stars.scaled" . }}{{ $c.autoscaling.minReplicas }}{{ else }}{{ $c.replicaCount }}{{ end }}
{{- end }}

{{/* The container port: the component's containerPort, else workloadDefaults'. Args: root, component. */}}
{{- define "rising-stars.containerPort" -}}
{{- (index .root.Values (include "rising-stars.valuesKey" .)).containerPort | default .root.Values.workloadDefaults.containerPort }}
{{- end }}

{{/*
terminationGracePeriodSeconds, derived from the one drain knob (<component>.shutdownSeconds):
the preStop sleep and the readiness drain (config.drainSeconds each), the time in-flight work
gets (SHUTDOWN_TIMEOUT_SECONDS), and headroom for the process to exit. Args: root, component.
*/}}
{{- define "rising-stars.gracePeriod" -}}
{{- $c := index .root.Values (include "rising-stars.valuesKey" .) }}
{{- add (mul 2 .root.Values.config.drainSeconds) $c.shutdownSeconds .root.Values.config.exitHeadroomSeconds }}
{{- end }}

{{/* The component's ServiceAccount name. Args: root, component. */}}
{{- define "rising-stars.serviceAccountName" -}}
{{- $sa := (index .root.Values (include "rising-stars.valuesKey" .)).serviceAccount }}
{{- if $sa.create }}
{{- $sa.name | default (include "rising-stars.componentName" .) }}
{{- else }}
{{- required (printf "%s.serviceAccount.name: name the existing ServiceAccount when create is false" (include "rising-stars.valuesKey" .)) $sa.name }}
{{- end }}
{{- end }}

{{/* The ALB's subnets (ingress.alb.subnets: id + cidr each) are the one source of the ALB's
subnets annotation, the API pods' ingress peers and the trusted proxies; without them,
networkPolicy.ingressControllerPeers and config.forwardedAllowIps. Args: root. */}}
{{- define "rising-stars.albSubnets" -}}
{{- (.Values.ingress.alb | default dict).subnets | default list | toJson }}
{{- end }}

{{- define "rising-stars.ingressPeers" -}}
{{- $subnets := include "rising-stars.albSubnets" . | fromJsonArray }}
{{- if $subnets }}
{{- range $subnets }}
- ipBlock:
    cidr: {{ .cidr }}
{{- end }}
{{- else }}
{{- toYaml .Values.networkPolicy.ingressControllerPeers }}
{{- end }}
{{- end }}

{{- define "rising-stars.forwardedAllowIps" -}}
{{- $subnets := include "rising-stars.albSubnets" . | fromJsonArray }}
{{- if $subnets }}
{{- $cidrs := list }}
{{- range $subnets }}{{ $cidrs = append $cidrs .cidr }}{{ end }}
{{- join "," $cidrs }}
{{- else }}
{{- .Values.config.forwardedAllowIps }}
{{- end }}
{{- end }}
