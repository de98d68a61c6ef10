"""Read what the collector stored through its real QueryService (tests of the trainer side)."""
from __future__ import annotations

import grpc

from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc


class Query:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = query_pb2_grpc.QueryServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def run(self, run: str) -> qpb.RunDetail:
        return self.stub.GetRun(qpb.RunRef(run=run), timeout=10)

    def epochs(self, run: str, rank: int = 0) -> list:
        return [e.summary for e in self.stub.GetEpochs(qpb.EpochsRequest(run=run, rank=rank), timeout=10).epochs]

    def steps(self, run: str, rank: int = 0) -> list:
        return list(self.stub.GetSteps(qpb.StepsRequest(run=run, rank=rank), timeout=10).samples)

    def logs(self, run: str) -> list:
        return list(self.stub.GetLogs(qpb.LogsRequest(run=run), timeout=10).records)

    def architecture(self, run: str):
        return self.stub.GetArchitecture(qpb.RunRef(run=run), timeout=10)
