# examples/zoo/using_models.py
from safesvd_core import compress
from safesvd_zoo import models

model = models.load("scot-ns")               # eval mode; needs safesvd[transformers]
adapter = models.spec("scot-ns").adapter()   # the transformers adapter, loss = relative_mse
batches = list(models.batches("scot-ns", "calibration"))   # adapter convention, one domain per batch
result = compress(model, batches, ratio=0.5, adapter=adapter)
print(models.test_loss("scot-ns", result.model))           # (model, copy-the-input) relative MSE
