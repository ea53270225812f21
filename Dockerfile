# webhook-bridge image: build stage with the -dev packages, runtime stage with only the shared
# libraries, running as an unprivileged user.
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
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-extra-2.1-7 librdkafka1 libmsgpackc2 libjansson4 libyaml-0-2 \
      libssl3 libhttp-parser2.9 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin bridge
COPY --from=build /build/bridge/webhook-bridge /build/proto/proto-decode \
     /build/proto/webhook-bridge-executor /usr/local/bin/
COPY configs /etc/webhook-bridge
USER bridge
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/webhook-bridge"]
CMD ["--config", "/etc/webhook-bridge/bridge.yaml", "--listen", "0.0.0.0:8080"]
