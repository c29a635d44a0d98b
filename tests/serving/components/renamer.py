"""A transformer as in KServe's docs: preprocess turns the client's
{"rows": ...} into the predictor's {"instances": ...}; the predictor is
called at --predictor_host (KServe's default Model.predict); postprocess
wraps the predictions as {"labels": ...}."""
import argparse

from kserve import Model, ModelServer, model_server


class Renamer(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    def preprocess(self, payload, headers=None):
        return {"instances": payload["rows"]}

    def postprocess(self, response, headers=None):
        return {"labels": response["predictions"], "via": "transformer"}


if __name__ == "__main__":
    args, _ = argparse.ArgumentParser(parents=[model_server.parser]).parse_known_args()
    ModelServer().start([Renamer(args.model_name)])
