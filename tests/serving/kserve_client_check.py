"""KServe's InferenceRESTClient against a running server (run as its own
process: the kserve package and tritonclient both register the
`inference.*` protobuf messages, so they cannot share an interpreter).

Usage: OXFLOW_TOKEN=TOKEN kserve_client_check.py BASE_URL FIXTURES_JSON
BASE_URL may hold `{model}`, replaced by each model's name: one
InferenceService per model, each at its own URL, as under `oxflow up`.
The clients send $OXFLOW_TOKEN as `Authorization: Bearer` (RESTConfig's
httpx `auth`); a client without it must be refused with 401 first.
Exits non-zero with the reason when an answer differs from the framework's.
"""
import asyncio
import json
import os
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


class Bearer(httpx.Auth):
    """Sends the server's token with every request."""

    def __init__(self, token):
        self.token = token

    def auth_flow(self, request):
        request.headers['Authorization'] = f'Bearer {self.token}'
        yield request


async def refused_without_the_token(base):
    anonymous = InferenceRESTClient(RESTConfig(protocol='v2', retries=0))
    try:
        url = base.format(model='xgb-multi')
        try:
            await anonymous.is_server_ready(url)
        except httpx.HTTPStatusError as e:
            assert e.response.status_code == 401, e
        else:
            raise AssertionError(f'{url} answered a client without the token')
    finally:
        await anonymous.close()


async def main(base, fixtures, token):
    await refused_without_the_token(base)
    v2 = InferenceRESTClient(RESTConfig(protocol='v2', retries=0, auth=Bearer(token)))
    v1 = InferenceRESTClient(RESTConfig(protocol='v1', retries=0, auth=Bearer(token)))
    try:
        for model in ['xgb-multi', 'lgb-binary', 'sk-logreg']:
            url = base.format(model=model)
            assert await v2.is_server_ready(url), f'server at {url} not ready'
            assert await v2.is_model_ready(url, model), f'{model} not ready'
            rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
            inp = InferInput(name='input-0', shape=list(rows.shape), datatype='FP32')
            inp.set_data_from_numpy(rows, binary_data=False)
            response = await v2.infer(url, InferRequest(model_name=model, infer_inputs=[inp], request_id='k-1'),
                                      model_name=model)
            assert response.id == 'k-1', response.id
            np.testing.assert_array_equal(response.outputs[0].as_numpy(),
                                          np.asarray(fixtures[model]['outputs']['predict']), err_msg=model)
        url = base.format(model='xgb-binary')
        assert await v1.is_model_ready(url, 'xgb-binary')
        response = await v1.infer(url, {'instances': fixtures['xgb-binary']['rows']}, model_name='xgb-binary')
        assert response['predictions'] == fixtures['xgb-binary']['outputs']['predict'], response
    finally:
        await v2.close()
        await v1.close()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], json.load(open(sys.argv[2])), os.environ['OXFLOW_TOKEN']))
    print('ok')
