{{/* Names: <release>-guarded-gateway unless the release name already contains the chart name. */}}
{{- define "gg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gg.fullname" -}}
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

{{- define "gg.vllm.fullname" -}}
{{- printf "%s-vllm" (include "gg.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gg.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels. Selector labels are immutable once deployed: name, instance, component. */}}
{{- define "gg.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "gg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "gg.name" . }}
{{- end }}

{{- define "gg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gg.gateway.selectorLabels" -}}
{{ include "gg.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "gg.vllm.selectorLabels" -}}
{{ include "gg.selectorLabels" . }}
app.kubernetes.io/component: vllm
{{- end }}

{{/* Images: tag defaults to the chart's appVersion. Call with (list .Values.x.image $). */}}
{{- define "gg.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* Object names shared by several templates. */}}
{{- define "gg.policies.configMapName" -}}
{{- default (printf "%s-policies" (include "gg.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{- define "gg.keys.secretName" -}}
{{- default (printf "%s-keys" (include "gg.fullname" .)) .Values.keys.existingSecret }}
{{- end }}

{{- define "gg.adapters.claimName" -}}
{{- default (printf "%s-adapters" (include "gg.fullname" .)) .Values.adapters.persistence.existingClaim }}
{{- end }}

{{- define "gg.upstreamUrl" -}}
{{- if .Values.gateway.upstreamUrl }}
{{- .Values.gateway.upstreamUrl }}
{{- else if .Values.vllm.enabled }}
{{- printf "http://%s:%d" (include "gg.vllm.fullname" .) (int .Values.vllm.port) }}
{{- else }}
{{- fail "gateway.upstreamUrl is required when vllm.enabled is false" }}
{{- end }}
{{- end }}

{{/* The keys file the chart manages: {"keys": [...]} as the gateway's auth module reads it. */}}
{{- define "gg.keys.json" -}}
{{- dict "keys" .Values.keys.entries | toJson }}
{{- end }}
