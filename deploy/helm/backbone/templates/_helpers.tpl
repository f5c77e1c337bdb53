{{/* Names: <release>-backbone unless the release is called backbone already. */}}
{{- define "backbone.fullname" -}}
{{- if contains "backbone" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-backbone" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "backbone.labels" -}}
app.kubernetes.io/name: backbone
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: api, worker, provision, connector. */}}
{{- define "backbone.selector" -}}
app.kubernetes.io/name: backbone
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "backbone.keysSecret" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-keys" (include "backbone.fullname" .)) -}}
{{- end -}}

{{- define "backbone.connectorSecret" -}}
{{- .Values.connector.existingSecret | default (printf "%s-connector-keys" (include "backbone.fullname" .)) -}}
{{- end -}}

{{- define "backbone.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
{{- end -}}

{{/*
Refusals at render time, before anything reaches the cluster: settings the backbone would
refuse at start-up anyway, said once here instead of in a crash-looping pod's log.
*/}}
{{- define "backbone.checks" -}}
{{- if gt (int .Values.worker.replicas) (int .Values.partitions) -}}
{{- fail (printf "worker.replicas (%d) is above partitions (%d): the extra workers would get no partition and sit idle; raise partitions (before the first install) or run fewer workers" (int .Values.worker.replicas) (int .Values.partitions)) -}}
{{- end -}}
{{- if gt (int .Values.kafka.minInsyncReplicas) (int .Values.kafka.replicationFactor) -}}
{{- fail "kafka.minInsyncReplicas cannot be above kafka.replicationFactor: no write could ever be acknowledged" -}}
{{- end -}}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not (and .Values.kafka.sasl.mechanism .Values.kafka.sasl.username)) -}}
{{- fail "kafka.securityProtocol SASL_* needs kafka.sasl.mechanism (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN), kafka.sasl.username and kafka.sasl.passwordSecret.name" -}}
{{- end -}}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.passwordSecret.name) -}}
{{- fail "kafka.securityProtocol SASL_* needs kafka.sasl.passwordSecret.name: the password is read from a Secret, never from values" -}}
{{- end -}}
{{- if and .Values.secrets.existingSecret .Values.connector.enabled (not .Values.connector.existingSecret) -}}
{{- fail "secrets.existingSecret is set, so connector.existingSecret must be too: the Connector's client-secret must be the one your `clients` holds for connector.clientId, which the chart cannot read" -}}
{{- end -}}
{{- if and (or .Values.cassandra.auth.username .Values.cassandra.auth.usernameSecret.name) (not .Values.cassandra.auth.passwordSecret.name) -}}
{{- fail "cassandra.auth needs passwordSecret.name with a username: the password is read from a Secret, never from values" -}}
{{- end -}}
{{- end -}}

{{/*
The settings every backbone process reads (README "Configuration"). Inline in each pod
rather than a ConfigMap: the provisioning hook runs before the release's own objects
exist, and a changed setting rolls the pods by itself.
*/}}
{{- define "backbone.env" -}}
- name: BACKBONE_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: BACKBONE_KAFKA_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: BACKBONE_KAFKA_MIN_INSYNC_REPLICAS
  value: {{ .Values.kafka.minInsyncReplicas | quote }}
- name: BACKBONE_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: BACKBONE_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: BACKBONE_KAFKA_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: BACKBONE_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.passwordSecret.name | quote }}
      key: {{ .Values.kafka.sasl.passwordSecret.key | quote }}
{{- end }}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: BACKBONE_KAFKA_CA_FILE
  value: /etc/backbone/kafka-ca/ca.crt
{{- end }}
{{- if .Values.kafka.tls.clientCertSecret.name }}
- name: BACKBONE_KAFKA_CERT_FILE
  value: /etc/backbone/kafka-client/tls.crt
- name: BACKBONE_KAFKA_KEY_FILE
  value: /etc/backbone/kafka-client/tls.key
{{- end }}
- name: BACKBONE_KAFKA_SSL_CHECK_HOSTNAME
  value: {{ .Values.kafka.tls.checkHostname | quote }}
{{- end }}
- name: BACKBONE_CASSANDRA_CONTACT_POINTS
  value: {{ .Values.cassandra.contactPoints | quote }}
- name: BACKBONE_CASSANDRA_PORT
  value: {{ .Values.cassandra.port | quote }}
- name: BACKBONE_CASSANDRA_KEYSPACE
  value: {{ .Values.cassandra.keyspace | quote }}
- name: BACKBONE_CASSANDRA_REPLICATION
  value: {{ .Values.cassandra.replication | quote }}
- name: BACKBONE_CASSANDRA_CONSISTENCY
  value: {{ .Values.cassandra.consistency | quote }}
- name: BACKBONE_CASSANDRA_SERIAL_CONSISTENCY
  value: {{ .Values.cassandra.serialConsistency | quote }}
{{- if .Values.cassandra.auth.usernameSecret.name }}
- name: BACKBONE_CASSANDRA_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.cassandra.auth.usernameSecret.name | quote }}
      key: {{ .Values.cassandra.auth.usernameSecret.key | quote }}
{{- else if .Values.cassandra.auth.username }}
- name: BACKBONE_CASSANDRA_USERNAME
  value: {{ .Values.cassandra.auth.username | quote }}
{{- end }}
{{- with .Values.cassandra.auth.passwordSecret }}
{{- if .name }}
- name: BACKBONE_CASSANDRA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}
{{- if .Values.cassandra.tls.enabled }}
- name: BACKBONE_CASSANDRA_TLS
  value: "true"
{{- if .Values.cassandra.tls.caSecret.name }}
- name: BACKBONE_CASSANDRA_CA_FILE
  value: /etc/backbone/cassandra-ca/ca.crt
{{- end }}
{{- if .Values.cassandra.tls.clientCertSecret.name }}
- name: BACKBONE_CASSANDRA_CERT_FILE
  value: /etc/backbone/cassandra-client/tls.crt
- name: BACKBONE_CASSANDRA_KEY_FILE
  value: /etc/backbone/cassandra-client/tls.key
{{- end }}
- name: BACKBONE_CASSANDRA_SSL_CHECK_HOSTNAME
  value: {{ .Values.cassandra.tls.checkHostname | quote }}
{{- end }}
- name: BACKBONE_TOPIC_PREFIX
  value: {{ .Values.topicPrefix | quote }}
- name: BACKBONE_PARTITIONS
  value: {{ .Values.partitions | quote }}
- name: BACKBONE_ADDRESS_DOMAIN
  value: {{ .Values.addressDomain | quote }}
- name: BACKBONE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: BACKBONE_STATE_DIR
  value: /var/lib/backbone
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The master key, signing seed and OAuth clients: API and workers only. */}}
{{- define "backbone.keysEnv" -}}
- name: BACKBONE_MASTER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "backbone.keysSecret" . | quote }}
      key: master-key
- name: BACKBONE_SIGNING_SEED
  valueFrom:
    secretKeyRef:
      name: {{ include "backbone.keysSecret" . | quote }}
      key: signing-seed
- name: BACKBONE_CLIENTS
  valueFrom:
    secretKeyRef:
      name: {{ include "backbone.keysSecret" . | quote }}
      key: clients
{{- end -}}

{{/* The stores' CA certificates and client certificates, mounted where backbone.env
points; only those the settings use. */}}
{{- define "backbone.tlsFiles" -}}
{{- $files := list }}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol }}
{{- with .Values.kafka.tls.caSecret }}{{ if .name }}{{ $files = append $files (dict "volume" "kafka-ca" "secret" .name "items" (list (dict "key" .key "path" "ca.crt"))) }}{{ end }}{{ end }}
{{- with .Values.kafka.tls.clientCertSecret }}{{ if .name }}{{ $files = append $files (dict "volume" "kafka-client" "secret" .name "items" (list (dict "key" .certKey "path" "tls.crt") (dict "key" .keyKey "path" "tls.key"))) }}{{ end }}{{ end }}
{{- end }}
{{- if .Values.cassandra.tls.enabled }}
{{- with .Values.cassandra.tls.caSecret }}{{ if .name }}{{ $files = append $files (dict "volume" "cassandra-ca" "secret" .name "items" (list (dict "key" .key "path" "ca.crt"))) }}{{ end }}{{ end }}
{{- with .Values.cassandra.tls.clientCertSecret }}{{ if .name }}{{ $files = append $files (dict "volume" "cassandra-client" "secret" .name "items" (list (dict "key" .certKey "path" "tls.crt") (dict "key" .keyKey "path" "tls.key"))) }}{{ end }}{{ end }}
{{- end }}
{{- toJson $files }}
{{- end -}}

{{- define "backbone.caVolumeMounts" -}}
{{- range (include "backbone.tlsFiles" . | fromJsonArray) }}
- name: {{ .volume }}
  mountPath: /etc/backbone/{{ .volume }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "backbone.caVolumes" -}}
{{- range (include "backbone.tlsFiles" . | fromJsonArray) }}
- name: {{ .volume }}
  secret:
    secretName: {{ .secret | quote }}
    items:
      {{- toYaml .items | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "backbone.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
