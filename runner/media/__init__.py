"""media: what a video or image file really is: verification by decoding, observed facts,
what a gateway profile expects, the image types the gateway accepts."""
