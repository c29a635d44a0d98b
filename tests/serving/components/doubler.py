"""A custom predictor written as KServe's docs show: a kserve.Model served
by kserve.ModelServer. It doubles every number it is given."""
import argparse

from kserve import Model, ModelServer, model_server


class Doubler(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    def predict(self, payload, headers=None):
        return {"predictions": [[2 * v for v in row] for row in payload["instances"]]}


if __name__ == "__main__":
    args, _ = argparse.ArgumentParser(parents=[model_server.parser]).parse_known_args()
    ModelServer().start([Doubler(args.model_name)])
