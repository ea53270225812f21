# webhook-bridge image: a build stage with the compilers and -dev packages, and a runtime stage
# with only the shared libraries the two programs link (checked below by running them), as an
# unprivileged user. Debian 12 (bookworm) in both, so the runtime libraries are the ones built
# against. Holds webhook-bridge, proto-decode and the reference executor webhook-bridge-executor.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc meson ninja-build pkg-config libevent-dev librdkafka-dev libmsgpack-dev \
      libjansson-dev libyaml-dev libjsmn-dev libssl-dev libhttp-parser-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build meson_options.txt ./
COPY proto proto
COPY bridge bridge
COPY integration-tests integration-tests
RUN meson setup /build --buildtype=release -Dtests=disabled -Dintegration_tests=disabled \
 && meson compile -C /build bridge/webhook-bridge proto/proto-decode proto/webhook-bridge-executor

FROM debian:bookworm-slim
# The packages of the libraries ldd lists for the three programs; nothing else (no curl: the
# compose health checks speak HTTP from bash). ca-certificates: for a SASL_SSL/SSL Kafka.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 librdkafka1 libmsgpackc2 libjansson4 libyaml-0-2 libssl3 \
      libhttp-parser2.9 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid 10001 --home /nonexistent --shell /usr/sbin/nologin bridge
COPY --from=build /build/bridge/webhook-bridge /build/proto/proto-decode \
     /build/proto/webhook-bridge-executor /usr/local/bin/
COPY configs/bridge.yaml configs/compose.yaml /etc/webhook-bridge/
COPY configs/flows /etc/webhook-bridge/flows
# Fails the build when a shared library is missing from the list above or a shipped config or
# flow does not load.
RUN webhook-bridge --check-config --config /etc/webhook-bridge/bridge.yaml \
 && webhook-bridge --check-config --config /etc/webhook-bridge/compose.yaml \
 && webhook-bridge-executor --help >/dev/null \
 && proto-decode --help >/dev/null
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# 8080: webhooks; 8081: /metrics, /health, /ready, /lag (keep it off the public network).
EXPOSE 8080 8081
# Without arguments: the reference config, i.e. an embedded in-memory Kafka (trying it out only).
# docker-compose.yml runs it with configs/compose.yaml against the Kafka service.
ENTRYPOINT ["/usr/local/bin/webhook-bridge"]
CMD ["--config", "/etc/webhook-bridge/bridge.yaml", "--listen", "0.0.0.0:8080", \
     "--admin-listen", "0.0.0.0:8081"]
