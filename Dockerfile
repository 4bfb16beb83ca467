# outbox-cdc container image: a static binary on a distroless base, run as
# a non-root user. Build: docker build -t outbox-cdc .
#   (make image stamps VERSION, COMMIT and DATE from git).
# Run: docker run -v $PWD/outbox-cdc.yaml:/etc/outbox-cdc/outbox-cdc.yaml outbox-cdc
#
# The RUN lines of the build stage are run as a plain shell build by
# test/deploy_test.go (TestDockerfileBuild), so what they build is tested on
# machines without a container engine.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" -o /out/outbox-cdc ./cmd/outbox-cdc

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/outbox-cdc /usr/local/bin/outbox-cdc
USER 65532:65532
ENV OUTBOX_CDC_CONFIG=/etc/outbox-cdc/outbox-cdc.yaml
# 9187: /metrics, /healthz, /readyz (http.addr; set it to 0.0.0.0:9187 in the
# config for other containers to reach it).
EXPOSE 9187
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
	CMD ["/usr/local/bin/outbox-cdc", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/outbox-cdc"]
CMD ["run"]
