"""psrjax's data, by job:

  contract     the batch contract: every key's dtype, values and trailing axes; `check_example`
  video        video files and image folders in and out, the person-centred square crop
  sources/     video sources: the interface samplers read and its implementations
  samplers/    a source's videos -> a system's examples
  preparation/ `psrjax prepare`: real videos and multi-view recordings -> prepared datasets
  builders/    the bases of the TFDS builders in datasets/
  synthetic/   the synthetic multi-view human world
"""
