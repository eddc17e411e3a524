# examples/plugins/test_my_allocator.py  (run with pytest)
from safesvd_core.testing.allocators import AllocatorConformance

from my_allocator import MyAllocator


class TestMyAllocator(AllocatorConformance):
    plugin_name = "my-allocator"

    def make_allocator(self, min_rank):
        return MyAllocator(min_rank=min_rank)
