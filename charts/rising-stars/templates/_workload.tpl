{{/*
Objects every component has, shaped the same way. Each component's template file calls these
with its own name, so a kind lives in one place and each file says what is specific to it.
*/}}

{{/*
Deployment. Args: root, component, image (optional: the component whose image it runs),
command / args (optional YAML flow lists), env (YAML list), envFrom (YAML), volumes / volumeMounts (extra YAML
lists), secretEnv (bool). Replicas are left out when a scaler owns them.
*/}}
{{- define "rising-stars.deployment" -}}
{{- $root := .root }}
{{- $c := index $root.Values (include "rising-stars.valuesKey" .) }}
{{- /* Probe timings merge key by key; a strategy is replaced whole (Recreate has no rollingUpdate). */}}
{{- $w := mergeOverwrite (deepCopy $root.Values.workloadDefaults) (pick $c "probes" "revisionHistoryLimit") }}
{{- $_ := set $w "strategy" ($c.strategy | default $w.strategy) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "rising-stars.metadata" . | nindent 2 }}
  {{- $skips := include "rising-stars.checkovSkips" . | trim }}
  {{- with $skips }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  {{- if not (include "rising-stars.scaled" .) }}
  replicas: {{ $c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $w.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "rising-stars.selectorLabels" . | nindent 6 }}
  strategy:
    {{- toYaml $w.strategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "rising-stars.labels" . | nindent 8 }}
      annotations:
        {{- /* A changed database Secret rendered by the chart (database.url) rolls the pods; an
        existingSecret is not the chart's to hash (docs/deploy.md: rollout restart). */}}
        checksum/database-secret: {{ include (print $root.Template.BasePath "/database-secret.yaml") $root | sha256sum }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $skips }}
        {{- . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "rising-stars.serviceAccountName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "rising-stars.gracePeriod" . }}
      securityContext:
        {{- include "rising-stars.podSecurityContext" (dict "root" $root "values" $c) | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "rising-stars.image" . }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          {{- with .command }}
          command: {{ . }}
          {{- end }}
          {{- with .args }}
          args: {{ . }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ include "rising-stars.containerPort" . }}
              protocol: TCP
          env:
            {{- .env | trim | nindent 12 }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with .envFrom }}
          {{- . | trim | nindent 10 }}
          {{- end }}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            {{- toYaml $w.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            {{- toYaml $w.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            {{- toYaml $w.probes.readiness | nindent 12 }}
          {{- if gt (int $root.Values.config.drainSeconds) 0 }}
          lifecycle:
            preStop:
              # Endpoint removal races SIGTERM: keep serving until load balancers have caught up.
              sleep:
                seconds: {{ $root.Values.config.drainSeconds }}
          {{- end }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- include "rising-stars.containerSecurityContext" (dict "root" $root "values" $c) | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- . | trim | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $c.tmpSizeLimit }}
        {{- with .volumes }}
        {{- . | trim | nindent 8 }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* Service. Args: root, component. */}}
{{- define "rising-stars.service" -}}
{{- $c := index .root.Values (include "rising-stars.valuesKey" .) }}
apiVersion: v1
kind: Service
metadata:
  {{- include "rising-stars.metadata" . | nindent 2 }}
  {{- with $c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "rising-stars.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $c.service.port }}
      targetPort: http
      protocol: TCP
{{- end }}

{{/* ServiceAccount (IRSA role via annotations), unless serviceAccount.create is false. Args: root, component. */}}
{{- define "rising-stars.serviceAccount" -}}
{{- $c := index .root.Values (include "rising-stars.valuesKey" .) }}
{{- if $c.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "rising-stars.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "rising-stars.labels" . | nindent 4 }}
  {{- with $c.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# A pod that calls the Kubernetes API (the operator) mounts the token itself.
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{/* CPU (and optionally requests/s) HPA. Args: root, component. */}}
{{- define "rising-stars.hpa" -}}
{{- $a := (index .root.Values (include "rising-stars.valuesKey" .)).autoscaling }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "rising-stars.metadata" . | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "rising-stars.componentName" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
    {{- with $a.requestsPerSecond }}
    {{- if .enabled }}
    - type: Pods
      pods:
        metric:
          name: {{ .metricName }}
        target:
          type: AverageValue
          averageValue: {{ .averageValue | quote }}
    {{- end }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* PodDisruptionBudget, only when the component never runs fewer than 2 pods. Args: root, component. */}}
{{- define "rising-stars.pdb" -}}
{{- $c := index .root.Values (include "rising-stars.valuesKey" .) }}
{{- if gt (int (include "rising-stars.minReplicas" .)) 1 }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "rising-stars.metadata" . | nindent 2 }}
spec:
  maxUnavailable: {{ $c.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "rising-stars.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* ServiceMonitor. Args: root, component. */}}
{{- define "rising-stars.serviceMonitor" -}}
{{- $m := .root.Values.metrics.serviceMonitor }}
{{- if $m.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "rising-stars.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "rising-stars.labels" . | nindent 4 }}
    {{- with $m.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "rising-stars.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .root.Release.Namespace }}]
  endpoints:
    - port: http
      path: /metrics
      interval: {{ $m.interval }}
{{- end }}
{{- end }}

{{/* Peer selecting pods of this release's component. Args: root, component. */}}
{{- define "rising-stars.podPeer" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .root.Release.Name }}
      app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Egress rules shared by every component: DNS. Args: root. */}}
{{- define "rising-stars.egressDns" -}}
- to:
    {{- toYaml .root.Values.networkPolicy.dns.peers | nindent 4 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}

{{/* Egress rule to a peer group with ports. Args: peers, ports. */}}
{{- define "rising-stars.egressTo" -}}
- to:
    {{- toYaml .peers | nindent 4 }}
  ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}

{{/*
Egress rule to the OpenTelemetry collector (tracing.egress), only when tracing.otlpEndpoint is
set. Without peers the rule would allow every destination, so the chart refuses. Args: root.
*/}}
{{- define "rising-stars.egressTracing" -}}
{{- $t := .root.Values.tracing }}
{{- if $t.otlpEndpoint }}
{{- if not $t.egress.peers }}
{{- fail "tracing.egress.peers: name the OpenTelemetry collector's pods or addresses (NetworkPolicy peers) the services may send spans to" }}
{{- end }}
{{- include "rising-stars.egressTo" $t.egress }}
{{- end }}
{{- end }}
