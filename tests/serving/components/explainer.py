"""An explainer: :explain calls the predictor (KServe's default
Model.predict, at --predictor_host) and reports which rows were predicted
as the positive class."""
import argparse

from kserve import Model, ModelServer, model_server


class Explainer(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def explain(self, payload, headers=None):
        predicted = await self.predict(payload, headers)
        labels = predicted["predictions"]
        return {"explanations": [{"row": i, "positive": label == 1} for i, label in enumerate(labels)]}


if __name__ == "__main__":
    args, _ = argparse.ArgumentParser(parents=[model_server.parser]).parse_known_args()
    ModelServer().start([Explainer(args.model_name)])
