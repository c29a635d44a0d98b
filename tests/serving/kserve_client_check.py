"""KServe's InferenceRESTClient against a running server (run as its own
process: the kserve package and tritonclient both register the
`inference.*` protobuf messages, so they cannot share an interpreter).

Usage: kserve_client_check.py BASE_URL FIXTURES_JSON
Exits non-zero with the reason when an answer differs from the framework's.
"""
import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(base, fixtures):
    v2 = InferenceRESTClient(RESTConfig(protocol='v2', retries=0))
    v1 = InferenceRESTClient(RESTConfig(protocol='v1', retries=0))
    try:
        assert await v2.is_server_ready(base), 'server not ready'
        for model in ['xgb-multi', 'lgb-binary', 'sk-logreg']:
            assert await v2.is_model_ready(base, model), f'{model} not ready'
            rows = np.asarray(fixtures[model]['rows'], dtype=np.float32)
            inp = InferInput(name='input-0', shape=list(rows.shape), datatype='FP32')
            inp.set_data_from_numpy(rows, binary_data=False)
            response = await v2.infer(base, InferRequest(model_name=model, infer_inputs=[inp], request_id='k-1'),
                                      model_name=model)
            assert response.id == 'k-1', response.id
            np.testing.assert_array_equal(response.outputs[0].as_numpy(),
                                          np.asarray(fixtures[model]['outputs']['predict']), err_msg=model)
        assert await v1.is_model_ready(base, 'xgb-binary')
        response = await v1.infer(base, {'instances': fixtures['xgb-binary']['rows']}, model_name='xgb-binary')
        assert response['predictions'] == fixtures['xgb-binary']['outputs']['predict'], response
    finally:
        await v2.close()
        await v1.close()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], json.load(open(sys.argv[2]))))
    print('ok')
