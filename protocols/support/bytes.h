/* Network-order fields read and written a byte at a time, so that no
 * packet is cast to a struct and no alignment is assumed: what every wire
 * format here (RTP and RTCP, SRM) shares. */
#ifndef CHASSISD_SUPPORT_BYTES_H
#define CHASSISD_SUPPORT_BYTES_H

#include <stdint.h>

static inline uint16_t read_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t read_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t read_u64(const uint8_t *p)
{
	return (uint64_t)read_u32(p) << 32 | read_u32(p + 4);
}

static inline void write_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void write_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void write_u64(uint8_t *p, uint64_t v)
{
	write_u32(p, (uint32_t)(v >> 32));
	write_u32(p + 4, (uint32_t)v);
}

#endif
