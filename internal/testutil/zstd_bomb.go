package testutil

import "encoding/binary"

// ZstdBomb returns a small zstd frame of RLE blocks (4 bytes each, 128 KiB
// of zeros each) that decodes to size bytes: about size/32768 bytes on the
// wire, so 1 GiB of output costs 32 KiB. With declare, the frame header
// declares size as its content size (the bomb that announces itself);
// without, it declares nothing and only produces. size must be a positive
// multiple of 128 KiB.
func ZstdBomb(size int64, declare bool) []byte {
	const block = 128 << 10
	out := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	if declare {
		// Frame_Header_Descriptor: 8-byte content size, not single segment.
		out = append(out, 0xC0, windowByte)
		out = binary.LittleEndian.AppendUint64(out, uint64(size))
	} else {
		out = append(out, 0x00, windowByte)
	}
	for left := size; left > 0; left -= block {
		h := uint32(block)<<3 | 1<<1 // Block_Size, Block_Type RLE
		if left == block {
			h |= 1 // Last_Block
		}
		out = append(out, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return out
}

// windowByte is a Window_Descriptor of 1 MiB (exponent 10, mantissa 0).
const windowByte = 10 << 3
