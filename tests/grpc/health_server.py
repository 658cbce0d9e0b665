"""A real gRPC health server (grpcio's own grpc.health.v1 servicer) for the
grpc probe tests: serves on 127.0.0.1 (port 0: any), prints the port, and
exits when its stdin closes (the test process is gone). Arguments: a port
(default 0: any), --no-health.

Services: "" and "ok" are SERVING, "down" is NOT_SERVING; any other name
is unknown (NOT_FOUND). With --no-health the server has no health service
at all (UNIMPLEMENTED)."""

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    ports = [a for a in sys.argv[1:] if a.isdigit()]
    port = int(ports[0]) if ports else 0
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    if "--no-health" not in sys.argv:
        servicer = health.HealthServicer()
        status = health_pb2.HealthCheckResponse
        servicer.set("", status.SERVING)
        servicer.set("ok", status.SERVING)
        servicer.set("down", status.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(bound, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
