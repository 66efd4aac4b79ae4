{{/* The chart name, truncated to 63 characters. */}}
{{- define "shard-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object the chart creates. */}}
{{- define "shard-operator.fullname" -}}
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

{{- define "shard-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shard-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shard-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shard-operator.labels" -}}
helm.sh/chart: {{ include "shard-operator.chart" . }}
{{ include "shard-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: shard-operator
{{- end }}

{{- define "shard-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shard-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader Lease's name (in the release namespace). */}}
{{- define "shard-operator.leaseName" -}}
{{- printf "%s-leader" (include "shard-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shard-operator.clusterwide" -}}
{{- if not .Values.watchNamespaces }}true{{- end }}
{{- end }}

{{/* The operator's permissions on the objects it serves (both modes). */}}
{{- define "shard-operator.rules" -}}
# The controller writes nothing but status on ShardSets and Shards; it creates and
# deletes Shards, and owns the Pods, Services and key map ConfigMaps.
- apiGroups: [shards.anoma.net]
  resources: [shardsets]
  verbs: [get, list, watch]
- apiGroups: [shards.anoma.net]
  resources: [shards]
  verbs: [get, list, watch, create, delete]
- apiGroups: [shards.anoma.net]
  resources: [shardsets/status, shards/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [pods, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
# A claim per shard: created and grown, never deleted (under whenDeleted: Delete
# the garbage collector deletes it with its Shard, its owner).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# The NetworkPolicy per ShardSet: made and restored, never deleted (the garbage
# collector deletes it with its ShardSet, its owner).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
The address the liveness and metrics endpoints listen on: .Values.bindAddress, or the
pod's own IP from the downward API (never 0.0.0.0). bindHost is the same for a URL
(an IPv6 literal in brackets).
*/}}
{{- define "shard-operator.bindAddress" -}}
{{- .Values.bindAddress | default "$(POD_IP)" -}}
{{- end }}

{{- define "shard-operator.bindHost" -}}
{{- $address := include "shard-operator.bindAddress" . -}}
{{- if contains ":" $address -}}[{{ $address }}]{{- else -}}{{ $address }}{{- end -}}
{{- end }}
