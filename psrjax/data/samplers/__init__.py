"""Samplers: a video source's videos -> a system's examples, in the batch contract.

  per_person       one person's video: pix2pix, pix2pixHD, Everybody Dance Now, CoCosNet video,
                   D²G-Net and the retrieval baseline
  same_video       K source and L target frames of one video: MFCI, FOMM (training)
  view_pairs       an input view and a target view of one take: PSR-Net
  first_frame      a video's first frame driven by a later one: INTERnet, FOMM (evaluation)
  surface_windows  frame windows with body-surface maps: D²G-Net's UV generator pre-training
"""
