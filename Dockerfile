# syntax=docker/dockerfile:1
#
# flinkpki container image: one static binary on distroless, running as the
# distroless "nonroot" user (65532). The same image serves (`flinkpki serve`)
# and runs in Flink init containers (`flinkpki init`).
#
#   docker build -t ghcr.io/flinkpki/flinkpki:dev .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads are cached in their own layer, keyed on go.mod and go.sum.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/flinkpki ./cmd/flinkpki

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flinkpki /flinkpki
USER 65532:65532
# gRPC (TLS), plaintext gRPC health for kubelet probes, Prometheus metrics.
EXPOSE 7443 7444 9090
ENTRYPOINT ["/flinkpki"]
CMD ["--help"]
