"""The data planes refuse foreign Hosts and cross-origin state changes like
every other listener: `oxflow serve` over REST and gRPC, `oxflow up`'s
inference gRPC port, and InferenceServices reached by `Host` under
`oxflow up` (a rebinding page cannot name a service under its own domain).
Every request carries the server's token, so what refuses it is the edge's
Host, Origin and :authority checks, never authentication."""
import socket

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from conftest import Up


def raw(hostport, request: bytes) -> tuple[int, bytes]:
    host, port = hostport.rsplit(':', 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    answer = b''.join(chunks)
    return (int(answer.split(b' ', 2)[1]) if answer.startswith(b'HTTP/') else 0), answer


def req(method, path, host, headers=(), body=b'', token=None):
    lines = [f'{method} {path} HTTP/1.1']
    if host is not None:
        lines.append(f'Host: {host}')
    if token is not None:
        lines.append(f'Authorization: Bearer {token}')
    lines += list(headers) + [f'Content-Length: {len(body)}', 'Connection: close', '', '']
    return '\r\n'.join(lines).encode() + body


def test_oxflow_serve_refuses_foreign_hosts_and_origins(server):
    status, answer = raw(server.http, req('GET', '/v2/health/ready', 'attacker.test', token=server.token))
    assert status == 403, answer
    status, _ = raw(server.http, req('GET', '/v2/health/ready', None, token=server.token))
    assert status == 403
    status, _ = raw(server.http, req('GET', '/v2/health/ready', server.http, token=server.token))
    assert status == 200
    # A page on another origin cannot unload a model (text/plain, no preflight).
    status, answer = raw(server.http, req('POST', '/v2/repository/models/xgb-binary/unload', server.http,
                                          ['Origin: http://evil.test', 'Content-Type: text/plain'], b'{}',
                                          token=server.token))
    assert status == 403, answer
    status, body = raw(server.http, req('GET', '/v2/models/xgb-binary/ready', server.http, token=server.token))
    assert status == 200, body


def grpc_live(target, token, authority=None):
    options = [('grpc.default_authority', authority)] if authority else []
    with grpc.insecure_channel(target, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        return stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10,
                               metadata=(('authorization', f'Bearer {token}'),)).live


def test_grpc_listeners_refuse_foreign_authorities(server, tmp_path_factory):
    assert grpc_live(server.grpc, server.token) is True
    assert server.triton_grpc().is_server_live()
    with pytest.raises(grpc.RpcError) as refused:
        grpc_live(server.grpc, server.token, authority='attacker.test:8081')
    assert refused.value.code() not in (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED), refused.value
    # oxflow up's inference gRPC port too.
    up = Up(tmp_path_factory.mktemp('edge-home'))
    try:
        with pytest.raises(grpc.RpcError):
            grpc_live(up.grpc, up.token, authority='attacker.test')
        # A name under KServe's reserved default domain is fine (no such
        # service: the server answers, with its own error).
        try:
            grpc_live(up.grpc, up.token, authority='nothing.default.example.com')
        except grpc.RpcError as e:
            assert 'forbidden' not in str(e.details()).lower()
            assert e.code() not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), e
        # Services reached by Host: only under names that cannot be rebound.
        status, _ = raw(up.addr, req('GET', '/v1/models/iris', 'iris.default.attacker.test', token=up.token))
        assert status == 403
        status, _ = raw(up.addr, req('GET', '/v1/models/iris', 'iris.default.example.com', token=up.token))
        assert status != 403
    finally:
        up.stop()
