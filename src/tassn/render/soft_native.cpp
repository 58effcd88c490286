// The soft rasterizer's pair search and backward pass as fused CPU loops (loaded by soft_native.py).
//
// pairs() finds the same (pixel, face) pairs as soft_spans.row_spans + covering_pairs (tight=False) and computes
// them term for term in the same floating-point order, so that the pair set, the nearest edge (ties between two edges
// are decided by rounding) and every value agree bit for bit with the PyTorch path: multiply-adds are fused exactly
// where torch.addcmul fuses (probed once), and the edge lengths come from at::sqrt, which is not always correctly
// rounded (MKL) but is what the PyTorch path uses. backward() is _SoftSilhouette.backward's formula in one loop over
// the pairs. With AVX2 (float32) both take 8 pixels or pairs per step, with the same operations lane by lane.
// Both run one mesh per task (at::parallel_for), collected in batch order: the output does not depend on the thread
// count, and each mesh's vertices receive gradients from one task only.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TASSN_AVX2 1
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

namespace {

constexpr int NEXT[3] = {1, 2, 0};  // edge i runs from vertex i to vertex NEXT[i]

// The pairs of a run of meshes, appended straight into output tensors that grow as needed (the caller returns
// them narrowed to their length): no intermediate copy, and no fresh memory touched twice. Candidates are written
// branch-free into the next free slots, which only kept pairs claim.
template <typename T>
struct PairWriter {
  torch::Tensor pix, edge, x, z;
  int64_t* pix_data = nullptr;
  int64_t* edge_data = nullptr;
  T* x_data = nullptr;
  T* z_data = nullptr;
  int64_t n = 0, cap = 0;
  int64_t pix_base = 0, edge_base = 0;  // of the current mesh: b·S², 3·b·F

  PairWriter(int64_t capacity, bool need_z) { grow(capacity, need_z); }

  void reserve(int64_t extra, bool need_z) {
    if (n + extra > cap) grow(std::max(n + extra, 2 * cap), need_z);
  }

  void grow(int64_t capacity, bool need_z) {
    const auto grown = [&](const torch::Tensor& old, c10::ScalarType dtype) {
      auto t = torch::empty({capacity}, torch::TensorOptions().dtype(dtype));
      if (n) t.narrow(0, 0, n).copy_(old.narrow(0, 0, n));
      return t;
    };
    const auto real = c10::CppTypeToScalarType<T>::value;
    pix = grown(pix, torch::kLong);
    edge = grown(edge, torch::kLong);
    x = grown(x, real);
    if (need_z) z = grown(z, real);
    pix_data = pix.data_ptr<int64_t>();
    edge_data = edge.data_ptr<int64_t>();
    x_data = x.template data_ptr<T>();
    z_data = need_z ? z.template data_ptr<T>() : nullptr;
    cap = capacity;
  }
};

// Scalars of one call, in the kernel's precision (torch casts Python scalars to the tensor's dtype).
template <typename T>
struct Params {
  int64_t S, F;
  T r, two_r, tall, scale_over_sigma, blur_px2, ndc2, degenerate;
};

// One face's tables, relative to its first vertex (ox, oy), as soft_spans.face_tables and row_spans compute them.
// Along a row yr (relative), n_i = an_i·xr + cn_i is the signed distance to edge i's line (positive inside) and
// s_i = as_i·xr + cs_i the position of the foot of the perpendicular along the edge, with
// cn_i = (ex_i·dy_i + ey_i·vx_i)·kn_i, cs_i = (ey_i·dy_i − ex_i·vx_i) / len_i, dy_i = yr − vy_i.
template <typename T>
struct Face {
  T ox, oy, vx[3], vy[3], ex[3], ey[3], len[3], kn[3], an[3], as[3], eyvx[3], exvx[3], zo[3];
  int32_t edge0;  // 3f
};

// x-extent (relative to the face's first vertex) of the face inside the band [yr − r, yr + r], as
// soft_spans._band_extent finds it.
template <typename T>
void band_extent(T yr, const Face<T>& fc, T r, T& xl, T& xr) {
  const T* vx = fc.vx;
  const T* vy = fc.vy;
  xl = std::numeric_limits<T>::infinity();
  xr = -xl;
  for (T line : {yr - r, yr + r}) {
    for (int i = 0; i < 3; ++i) {
      const int j = NEXT[i];
      const T dq = vy[j] - vy[i];
      if ((vy[i] - line) * (vy[j] - line) <= 0 && dq != 0) {
        const T xc = vx[i] + ((line - vy[i]) * (vx[j] - vx[i])) / dq;
        xl = std::min(xl, xc);
        xr = std::max(xr, xc);
      }
    }
  }
  for (int j = 0; j < 3; ++j) {
    if (std::abs(vy[j] - yr) <= r) {
      xl = std::min(xl, vx[j]);
      xr = std::max(xr, vx[j]);
    }
  }
}

// a·b + c as torch.addcmul(c, a, b) computes it
template <bool Fused, typename T>
inline T madd(T a, T b, T c) {
  if constexpr (Fused) return std::fma(a, b, c);
  return a * b + c;
}

// Whether torch.addcmul rounds a·b + c once: (1 + h)² − 1 = 2h + h² needs one more bit than T has.
template <typename T>
bool addcmul_fuses() {
  const T h = std::ldexp(T(1), -(std::numeric_limits<T>::digits + 1) / 2);
  const auto opts = torch::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  const auto b = torch::full({64}, T(1) + h, opts);
  return at::addcmul(torch::full({64}, T(-1), opts), b, b)[0].template item<T>() != 2 * h;
}

// ex² + ey² of every edge of every face of one mesh (F×3), for at::sqrt
template <typename T>
void edge_length2(const T* xy, const int64_t* faces, int64_t F, T* out) {
  for (int64_t f = 0; f < F; ++f) {
    const int64_t* v = faces + 3 * f;
    const T ox = xy[2 * v[0]], oy = xy[2 * v[0] + 1];
    T vx[3], vy[3];
    for (int k = 0; k < 3; ++k) {
      vx[k] = xy[2 * v[k]] - ox;
      vy[k] = xy[2 * v[k] + 1] - oy;
    }
    for (int i = 0; i < 3; ++i) {
      const T ex = vx[NEXT[i]] - vx[i], ey = vy[NEXT[i]] - vy[i];
      out[3 * f + i] = ex * ex + ey * ey;
    }
  }
}

// Appends the pairs of pixels x0 .. x0 + width − 1 of row y (capacity reserved by the caller). Branch-free: every
// candidate is written to the next slot and only a kept one advances the count.
template <bool Fused, typename T>
void row_pairs(const Face<T>& fc, int64_t y, int64_t x0, int64_t width, const Params<T>& p, bool need_z,
               PairWriter<T>& out) {
  const T yr = static_cast<T>(y) - fc.oy, x0r = static_cast<T>(x0) - fc.ox;
  T cn[3], cs[3];
  for (int i = 0; i < 3; ++i) {
    const T dy = yr - fc.vy[i];
    cn[i] = (fc.ex[i] * dy + fc.eyvx[i]) * fc.kn[i];
    cs[i] = (fc.ey[i] * dy - fc.exvx[i]) / fc.len[i];
  }
  const int64_t pix0 = out.pix_base + y * p.S + x0, edge0 = out.edge_base + fc.edge0;
  int64_t n = out.n;
  for (int64_t kx = 0; kx < width; ++kx) {
    const T xr = x0r + static_cast<T>(kx);
    T nn[3], d2[3];
    for (int i = 0; i < 3; ++i) {
      nn[i] = madd<Fused>(fc.an[i], xr, cn[i]);
      const T s = madd<Fused>(fc.as[i], xr, cs[i]);
      const T over = s - std::min(std::max(s, T(0)), fc.len[i]);
      d2[i] = madd<Fused>(over, over, nn[i] * nn[i]);
    }
    int code = 0;
    T dist2 = d2[0];
    if (d2[1] < dist2) dist2 = d2[1], code = 1;
    if (d2[2] < dist2) dist2 = d2[2], code = 2;
    const bool inside = (nn[0] > 0) & (nn[1] > 0) & (nn[2] > 0);
    out.pix_data[n] = pix0 + kx;
    out.edge_data[n] = edge0 + code;
    out.x_data[n] = (inside ? -dist2 : dist2) * p.scale_over_sigma;
    if (need_z) {
      // clipped barycentric weight of the vertex opposite edge i ∝ max(n_i·len_i, 0), normalised before mixing (so
      // that a pixel clipped to one vertex gets exactly its depth)
      T u[3];
      for (int i = 0; i < 3; ++i) u[i] = std::max(nn[i] * fc.len[i], T(0));
      const T total = (u[0] + u[1]) + u[2];
      out.z_data[n] =
          madd<Fused>(u[2] / total, fc.zo[2], madd<Fused>(u[1] / total, fc.zo[1], (u[0] / total) * fc.zo[0]));
    }
    n += inside | (dist2 < p.blur_px2);
  }
  out.n = n;
}

#ifdef TASSN_AVX2
// The lanes of each 8-bit mask's set bits, packed to the front (AVX2 has no compress instruction).
struct CompressTable {
  alignas(32) int32_t lanes[256][8];

  CompressTable() {
    for (int m = 0; m < 256; ++m) {
      int n = 0;
      for (int j = 0; j < 8; ++j)
        if ((m >> j) & 1) lanes[m][n++] = j;
      while (n < 8) lanes[m][n++] = 0;
    }
  }
};
const CompressTable compress_table;

// c / w and c % w for the small rectangles of most faces (w <= 16, c < 128), which would otherwise head every
// step's chain of dependent operations.
struct DivTable {
  static constexpr int max_w = 16, max_c = 128;
  alignas(32) int32_t quo[max_w + 1][max_c + 8], rem[max_w + 1][max_c + 8];

  DivTable() {
    for (int w = 1; w <= max_w; ++w)
      for (int c = 0; c < max_c + 8; ++c) {
        quo[w][c] = c / w;
        rem[w][c] = c % w;
      }
  }
};
const DivTable div_table;

inline __m256 bcast(float v) { return _mm256_set1_ps(v); }

// base + the 8 int32 lanes, as int64 at p
inline void store_int64(int64_t* p, __m256i v, __m256i base) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm256_add_epi64(base, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v))));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4),
                      _mm256_add_epi64(base, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1))));
}

// c / w and c % w of non-negative int32 lanes: through float, then corrected where rounding missed by one.
inline void divmod(__m256i c, int32_t w, __m256i& quo, __m256i& rem) {
  const __m256i wv = _mm256_set1_epi32(w);
  const __m256 cf = _mm256_add_ps(_mm256_cvtepi32_ps(c), bcast(0.5f));
  quo = _mm256_cvttps_epi32(_mm256_floor_ps(_mm256_mul_ps(cf, bcast(1.0f / static_cast<float>(w)))));
  rem = _mm256_sub_epi32(c, _mm256_mullo_epi32(quo, wv));
  const __m256i under = _mm256_cmpgt_epi32(_mm256_setzero_si256(), rem);
  quo = _mm256_add_epi32(quo, under);
  rem = _mm256_add_epi32(rem, _mm256_and_si256(under, wv));
  const __m256i over = _mm256_cmpgt_epi32(rem, _mm256_set1_epi32(w - 1));
  quo = _mm256_sub_epi32(quo, over);
  rem = _mm256_sub_epi32(rem, _mm256_and_si256(over, wv));
}

// Rows y0 .. y0 + rows − 1 of a face, on columns x0 .. x0 + width − 1 (every row of a short face, or one row of a
// tall one), 8 candidates per step: lane c is pixel (y0 + c / width, x0 + c % width). row_pairs<true, float>, lane
// by lane.
void rect_pairs(const Face<float>& fc, int64_t y0, int64_t rows, int64_t x0, int64_t width, const Params<float>& p,
                bool need_z, PairWriter<float>& out) {
  const int32_t count = static_cast<int32_t>(rows * width), w = static_cast<int32_t>(width);
  out.reserve(count + 8, need_z);  // whole 8-lane stores
  int64_t* pix = out.pix_data;
  int64_t* edge = out.edge_data;
  float* xs = out.x_data;
  float* zs = out.z_data;
  const __m256i pix_base = _mm256_set1_epi64x(out.pix_base), edge_base = _mm256_set1_epi64x(out.edge_base);
  int64_t n = out.n;
  const __m256 zero = _mm256_setzero_ps(), neg = bcast(-0.0f);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 x0r = bcast(static_cast<float>(x0) - fc.ox);
  struct Step {
    __m256i pv, ev;
    __m256 xv, z;
    unsigned bits;
  };
  const auto step = [&](int32_t c0) {
    Step st;
    const __m256i c = _mm256_add_epi32(lane, _mm256_set1_epi32(c0));
    __m256i row, kx;
    if (w <= DivTable::max_w && count <= DivTable::max_c) {
      row = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(div_table.quo[w] + c0));
      kx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(div_table.rem[w] + c0));
    } else {
      divmod(c, w, row, kx);
    }
    const __m256i y = _mm256_add_epi32(row, _mm256_set1_epi32(static_cast<int32_t>(y0)));
    const __m256 yr = _mm256_sub_ps(_mm256_cvtepi32_ps(y), bcast(fc.oy));
    const __m256 xr = _mm256_add_ps(x0r, _mm256_cvtepi32_ps(kx));
    __m256 nn[3], d2[3];
    for (int i = 0; i < 3; ++i) {
      const __m256 dy = _mm256_sub_ps(yr, bcast(fc.vy[i]));
      const __m256 cn = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(bcast(fc.ex[i]), dy), bcast(fc.eyvx[i])),
                                      bcast(fc.kn[i]));
      const __m256 cs = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(bcast(fc.ey[i]), dy), bcast(fc.exvx[i])),
                                      bcast(fc.len[i]));
      nn[i] = _mm256_fmadd_ps(bcast(fc.an[i]), xr, cn);
      const __m256 s = _mm256_fmadd_ps(bcast(fc.as[i]), xr, cs);
      const __m256 over = _mm256_sub_ps(s, _mm256_min_ps(_mm256_max_ps(s, zero), bcast(fc.len[i])));
      d2[i] = _mm256_fmadd_ps(over, over, _mm256_mul_ps(nn[i], nn[i]));
    }
    __m256 dist2 = d2[0];
    __m256i code = _mm256_setzero_si256();
    for (int i = 1; i < 3; ++i) {
      const __m256 nearer = _mm256_cmp_ps(d2[i], dist2, _CMP_LT_OQ);
      dist2 = _mm256_blendv_ps(dist2, d2[i], nearer);
      code = _mm256_blendv_epi8(code, _mm256_set1_epi32(i), _mm256_castps_si256(nearer));
    }
    const __m256 inside = _mm256_and_ps(
        _mm256_and_ps(_mm256_cmp_ps(nn[0], zero, _CMP_GT_OQ), _mm256_cmp_ps(nn[1], zero, _CMP_GT_OQ)),
        _mm256_cmp_ps(nn[2], zero, _CMP_GT_OQ));
    const __m256 keep =
        _mm256_and_ps(_mm256_or_ps(inside, _mm256_cmp_ps(dist2, bcast(p.blur_px2), _CMP_LT_OQ)),
                      _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(count), c)));
    st.bits = static_cast<unsigned>(_mm256_movemask_ps(keep));
    st.pv = _mm256_add_epi32(_mm256_mullo_epi32(y, _mm256_set1_epi32(static_cast<int32_t>(p.S))),
                             _mm256_add_epi32(kx, _mm256_set1_epi32(static_cast<int32_t>(x0))));
    st.ev = _mm256_add_epi32(code, _mm256_set1_epi32(fc.edge0));
    st.xv = _mm256_mul_ps(_mm256_xor_ps(dist2, _mm256_and_ps(inside, neg)), bcast(p.scale_over_sigma));
    if (need_z) {
      __m256 u[3];
      for (int i = 0; i < 3; ++i) u[i] = _mm256_max_ps(_mm256_mul_ps(nn[i], bcast(fc.len[i])), zero);
      const __m256 total = _mm256_add_ps(_mm256_add_ps(u[0], u[1]), u[2]);
      st.z = _mm256_mul_ps(_mm256_div_ps(u[0], total), bcast(fc.zo[0]));
      st.z = _mm256_fmadd_ps(_mm256_div_ps(u[1], total), bcast(fc.zo[1]), st.z);
      st.z = _mm256_fmadd_ps(_mm256_div_ps(u[2], total), bcast(fc.zo[2]), st.z);
    }
    return st;
  };
  // the kept lanes of a step, packed to the front of the next slots (whole 8-lane stores)
  const auto put = [&](const Step& st) {
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(compress_table.lanes[st.bits]));
    store_int64(pix + n, _mm256_permutevar8x32_epi32(st.pv, perm), pix_base);
    store_int64(edge + n, _mm256_permutevar8x32_epi32(st.ev, perm), edge_base);
    _mm256_storeu_ps(xs + n, _mm256_permutevar8x32_ps(st.xv, perm));
    if (need_z) _mm256_storeu_ps(zs + n, _mm256_permutevar8x32_ps(st.z, perm));
    n += __builtin_popcount(st.bits);
  };
  // two independent steps at a time: each is one long chain of dependent operations
  int32_t c0 = 0;
  for (; c0 + 8 < count; c0 += 16) {
    const Step first = step(c0), second = step(c0 + 8);
    put(first);
    put(second);
  }
  if (c0 < count) put(step(c0));
  out.n = n;
}
#endif

// A face's bounding box grown by the blur radius r; false where it misses the image (or a coordinate is NaN).
template <typename T>
struct FaceBox {
  T lo_x, hi_x, lo_y, hi_y;

  FaceBox(const T ax[3], const T ay[3], T r)
      : lo_x(std::min({ax[0], ax[1], ax[2]}) - r), hi_x(std::max({ax[0], ax[1], ax[2]}) + r),
        lo_y(std::min({ay[0], ay[1], ay[2]}) - r), hi_y(std::max({ay[0], ay[1], ay[2]}) + r) {}

  bool on_image(T last) const { return hi_x >= 0 && hi_y >= 0 && lo_x <= last && lo_y <= last; }
};

// Every pair of one mesh, face by face.
template <bool Fused, typename T>
void mesh_pairs(const T* xy, const T* z, const T* length, const int64_t* faces, const Params<T>& p,
                PairWriter<T>& out) {
  const T last = static_cast<T>(p.S - 1);
  const bool need_z = z != nullptr;
  Face<T> fc;
  for (int64_t f = 0; f < p.F; ++f) {
    const int64_t* v = faces + 3 * f;
    T ax[3], ay[3];
    bool finite = true;
    for (int k = 0; k < 3; ++k) {
      ax[k] = xy[2 * v[k]];
      ay[k] = xy[2 * v[k] + 1];
      finite = finite && std::isfinite(ax[k]) && std::isfinite(ay[k]);
    }
    if (!finite) continue;
    fc.ox = ax[0];
    fc.oy = ay[0];
    for (int k = 0; k < 3; ++k) {
      fc.vx[k] = ax[k] - fc.ox;
      fc.vy[k] = ay[k] - fc.oy;
    }
    for (int i = 0; i < 3; ++i) {
      fc.ex[i] = fc.vx[NEXT[i]] - fc.vx[i];
      fc.ey[i] = fc.vy[NEXT[i]] - fc.vy[i];
    }
    const T area2 = fc.ex[0] * fc.vy[2] - fc.ey[0] * fc.vx[2];
    if (!(std::abs(area2) * p.ndc2 > p.degenerate)) continue;
    const FaceBox<T> box(ax, ay, p.r);
    if (!box.on_image(last)) continue;
    const int64_t y0 = static_cast<int64_t>(std::clamp(std::ceil(box.lo_y), T(0), last));
    const int64_t y1 = static_cast<int64_t>(std::clamp(std::floor(box.hi_y), T(0), last));
    const bool tall = (box.hi_y - box.lo_y) - p.two_r > p.tall;  // short faces: the face's x-range on every row
    const T sgn = area2 > 0 ? T(1) : T(-1);
    for (int i = 0; i < 3; ++i) {
      fc.len[i] = length[3 * f + i];
      fc.kn[i] = sgn / fc.len[i];
      fc.an[i] = -fc.ey[i] * fc.kn[i];
      fc.as[i] = fc.ex[i] / fc.len[i];
      fc.eyvx[i] = fc.ey[i] * fc.vx[i];
      fc.exvx[i] = fc.ex[i] * fc.vx[i];
    }
    if (need_z) {  // depth of the vertex opposite edge i
      fc.zo[0] = z[v[2]];
      fc.zo[1] = z[v[0]];
      fc.zo[2] = z[v[1]];
    }
    fc.edge0 = static_cast<int32_t>(3 * f);
    const T min_vx = std::min({fc.vx[0], fc.vx[1], fc.vx[2]}), max_vx = std::max({fc.vx[0], fc.vx[1], fc.vx[2]});
    for (int64_t y = y0; y <= y1; ++y) {
      T xl = min_vx, xr = max_vx;
      if (tall) band_extent(static_cast<T>(y) - fc.oy, fc, p.r, xl, xr);
      T x0f = std::ceil((xl + fc.ox) - p.r), x1f = std::floor((xr + fc.ox) + p.r);
      x0f = std::isnan(x0f) ? T(0) : std::clamp(x0f, T(0), last);
      x1f = std::isnan(x1f) ? T(-1) : std::clamp(x1f, T(-1), last);
      const int64_t x0 = static_cast<int64_t>(x0f), width = static_cast<int64_t>(x1f) - x0 + 1;
      if (width <= 0) {
        if (tall) continue;
        break;  // the same empty columns on every row
      }
#ifdef TASSN_AVX2
      if constexpr (Fused && std::is_same_v<T, float>) {  // a short face's rows all at once, a tall one's row by row
        rect_pairs(fc, y, tall ? 1 : y1 - y0 + 1, x0, width, p, need_z, out);
        if (tall) continue;
        break;
      }
#endif
      out.reserve(width, need_z);
      row_pairs<Fused, T>(fc, y, x0, width, p, need_z, out);
    }
  }
}

// An upper bound on the candidates mesh_pairs writes for one mesh: every face's bounding box grown by r and clipped
// to the image, plus a whole 8-lane store per face. Reserved at once, the writer never grows (each growth copied
// everything written so far into fresh memory: most of a call's time on large meshes).
template <typename T>
int64_t candidate_bound(const T* xy, const int64_t* faces, const Params<T>& p) {
  const T last = static_cast<T>(p.S - 1);
  int64_t bound = 0;
  for (int64_t f = 0; f < p.F; ++f) {
    const int64_t* v = faces + 3 * f;
    const T ax[3] = {xy[2 * v[0]], xy[2 * v[1]], xy[2 * v[2]]};
    const T ay[3] = {xy[2 * v[0] + 1], xy[2 * v[1] + 1], xy[2 * v[2] + 1]};
    const FaceBox<T> box(ax, ay, p.r);
    if (!box.on_image(last)) continue;  // also NaN
    const T w = std::floor(std::min(box.hi_x, last)) - std::ceil(std::max(box.lo_x, T(0))) + 1;
    const T h = std::floor(std::min(box.hi_y, last)) - std::ceil(std::max(box.lo_y, T(0))) + 1;
    if (w > 0 && h > 0) bound += static_cast<int64_t>(w) * static_cast<int64_t>(h) + 8;
  }
  return bound;
}

template <typename T>
std::vector<torch::Tensor> pairs_impl(const torch::Tensor& xy, const torch::Tensor& z, const torch::Tensor& faces,
                                      int64_t S, double r_px, double scale_over_sigma, double blur_px2) {
  const int64_t B = xy.size(0), V = xy.size(1), F = faces.size(0);
  const Params<T> p{S,
                    F,
                    static_cast<T>(r_px),
                    static_cast<T>(2 * r_px),
                    static_cast<T>(2 * r_px + 2),
                    static_cast<T>(scale_over_sigma),
                    static_cast<T>(blur_px2),
                    static_cast<T>((2.0 / S) * (2.0 / S)),
                    static_cast<T>(1e-8)};
  const bool need_z = z.numel() > 0;
  const T* xy_data = xy.data_ptr<T>();
  const T* z_data = need_z ? z.data_ptr<T>() : nullptr;
  const int64_t* f_data = faces.data_ptr<int64_t>();
  auto length = torch::empty({B, F, 3}, xy.options());
  T* len_data = length.template data_ptr<T>();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) edge_length2<T>(xy_data + b * V * 2, f_data, F, len_data + b * F * 3);
  });
  length.sqrt_();
  static const bool fused = addcmul_fuses<T>();
  // one writer per run of meshes given to a thread (one run with one thread: no copy at all)
  std::vector<std::unique_ptr<PairWriter<T>>> runs(B);
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    int64_t bound = 64;
    for (int64_t b = begin; b < end; ++b) bound += candidate_bound<T>(xy_data + b * V * 2, f_data, p);
    // untouched until written, so only virtual memory; capped (≈ 0.8 GB) against a few enormous faces
    auto out = std::make_unique<PairWriter<T>>(std::min<int64_t>(bound, int64_t(1) << 25), need_z);
    for (int64_t b = begin; b < end; ++b) {
      out->pix_base = b * S * S;
      out->edge_base = 3 * b * F;
      const T* zb = need_z ? z_data + b * V : nullptr;
      if (fused)
        mesh_pairs<true, T>(xy_data + b * V * 2, zb, len_data + b * F * 3, f_data, p, *out);
      else
        mesh_pairs<false, T>(xy_data + b * V * 2, zb, len_data + b * F * 3, f_data, p, *out);
    }
    runs[begin] = std::move(out);
  });
  std::vector<torch::Tensor> parts[4];
  for (const auto& run : runs) {
    if (!run) continue;
    parts[0].push_back(run->pix.narrow(0, 0, run->n));
    parts[1].push_back(run->edge.narrow(0, 0, run->n));
    parts[2].push_back(run->x.narrow(0, 0, run->n));
    if (need_z) parts[3].push_back(run->z.narrow(0, 0, run->n));
  }
  const auto join = [](const std::vector<torch::Tensor>& ts, const torch::Tensor& like) {
    if (ts.empty()) return like.new_empty({0});
    return ts.size() == 1 ? ts[0] : torch::cat(ts);
  };
  const auto pix = join(parts[0], faces), edge = join(parts[1], faces), x = join(parts[2], xy);
  const auto zp = need_z ? join(parts[3], xy) : xy.new_empty({0});
  return {pix, edge, x, zp};
}

// Adds the gradient of one mesh's n pairs to its vertices (grad: the mesh's V×2). g_pix: ∂L/∂alpha·(1 − alpha)
// per pixel of the mesh; sig: p_k = sigmoid(−x) per pair; faces: F×3 vertex indices (int32).
template <typename T>
void mesh_backward(const T* g_pix, const T* sig, const T* xy, const int32_t* faces, const int64_t* pix,
                   const int64_t* edge, const T* x, int64_t n, int64_t pix_base, int64_t edge_base, int64_t S,
                   T neg_sos, T* grad) {
  for (int64_t k = 0; k < n; ++k) {
    const int64_t e = edge[k] - edge_base, f = e / 3;
    const int i = static_cast<int>(e - 3 * f);
    const int64_t ia = faces[3 * f + i], ib = faces[3 * f + NEXT[i]];
    const int64_t q = pix[k] - pix_base, row = q / S;
    // ∂alpha/∂d_k = −(1 − alpha)·p_k/σ ; d_k = scale · sign · dist² (sign −1 inside, where x < 0)
    const T coef = g_pix[q] * sig[k] * (x[k] < 0 ? -neg_sos : neg_sos);
    // nearest point a + t·e of the edge from a to b, r = p − (a + t·e); min/max: no branches
    const T ax = xy[2 * ia], ay = xy[2 * ia + 1], ex = xy[2 * ib] - ax, ey = xy[2 * ib + 1] - ay;
    const T px = static_cast<T>(q - row * S) - ax, py = static_cast<T>(row) - ay;
    const T t = std::min(std::max((px * ex + py * ey) / std::max(ex * ex + ey * ey, T(1e-20)), T(0)), T(1));
    const T rx = px - t * ex, ry = py - t * ey;
    const T wb = coef * t * T(-2);  // ∂dist²/∂b = −2 t r ; ∂dist²/∂a = −2 (1 − t) r
    const T wa = coef * T(-2) - wb;
    grad[2 * ia] += wa * rx;
    grad[2 * ia + 1] += wa * ry;
    grad[2 * ib] += wb * rx;
    grad[2 * ib + 1] += wb * ry;
  }
}

#ifdef TASSN_AVX2
// The n < 8 (or 8) int64 values at p minus base, as int32 lanes (0 beyond n; no read beyond n).
inline __m256i load_local(const int64_t* p, int64_t base, int n) {
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3), b = _mm256_set1_epi64x(base);
  const auto* q = reinterpret_cast<const long long*>(p);
  __m256i lo = _mm256_maskload_epi64(q, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lane));
  __m256i hi = _mm256_maskload_epi64(q + 4, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - 4), lane));
  const __m256i low_words = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  lo = _mm256_permutevar8x32_epi32(_mm256_sub_epi64(lo, b), low_words);
  hi = _mm256_permutevar8x32_epi32(_mm256_sub_epi64(hi, b), low_words);
  return _mm256_permute2x128_si256(lo, hi, 0x20);
}

// *to += (v[0], v[1]), two floats at once
inline void add_xy(float* to, const float* v) {
  const __m128 sum = _mm_add_ps(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(to))),
                                _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(v))));
  _mm_store_sd(reinterpret_cast<double*>(to), _mm_castps_pd(sum));
}

// mesh_backward for float, 8 pairs per step: gathers for the per-pair values and the same operations lane by lane;
// only the four additions into the vertices are scalar (AVX2 has no scatter). Needs 3F < 2^24 (edge / 3 through
// float).
template <>
void mesh_backward(const float* g_pix, const float* sig, const float* xy, const int32_t* faces, const int64_t* pix,
                   const int64_t* edge, const float* x, int64_t n, int64_t pix_base, int64_t edge_base, int64_t S,
                   float neg_sos, float* grad) {
  alignas(32) int32_t ia_s[8], ib_s[8];
  alignas(32) float wa_xy[16], wb_xy[16];  // (x, y) per lane, in unpacklo/unpackhi order: lane l at slot[l]
  constexpr int slot[8] = {0, 2, 8, 10, 4, 6, 12, 14};
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), next = _mm256_setr_epi32(1, 2, 0, 0, 0, 0, 0, 0);
  const __m256i one = _mm256_set1_epi32(1), three = _mm256_set1_epi32(3);
  const __m256 zero = _mm256_setzero_ps(), neg_two = bcast(-2.0f);
  for (int64_t k = 0; k < n; k += 8) {
    const int m = static_cast<int>(std::min<int64_t>(8, n - k));
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(m), lane);
    const __m256 valid_f = _mm256_castsi256_ps(valid);
    __m256i f, i, row, col;
    divmod(load_local(edge + k, edge_base, m), 3, f, i);
    const __m256i corner = _mm256_mullo_epi32(f, three);
    // vertex indices of the edge's ends a, b (masked lanes read vertex 0)
    const __m256i none = _mm256_setzero_si256(), j = _mm256_permutevar8x32_epi32(next, i);
    const __m256i ia = _mm256_mask_i32gather_epi32(none, faces, _mm256_add_epi32(corner, i), valid, 4);
    const __m256i ib = _mm256_mask_i32gather_epi32(none, faces, _mm256_add_epi32(corner, j), valid, 4);
    const __m256i xa = _mm256_add_epi32(ia, ia), xb = _mm256_add_epi32(ib, ib);
    const __m256 ax = _mm256_i32gather_ps(xy, xa, 4), ay = _mm256_i32gather_ps(xy, _mm256_add_epi32(xa, one), 4);
    const __m256 ex = _mm256_sub_ps(_mm256_i32gather_ps(xy, xb, 4), ax);
    const __m256 ey = _mm256_sub_ps(_mm256_i32gather_ps(xy, _mm256_add_epi32(xb, one), 4), ay);
    const __m256i q = load_local(pix + k, pix_base, m);
    divmod(q, static_cast<int32_t>(S), row, col);
    const __m256 g = _mm256_mask_i32gather_ps(zero, g_pix, q, valid_f, 4);
    const __m256 sg = _mm256_maskload_ps(sig + k, valid), xk = _mm256_maskload_ps(x + k, valid);
    const __m256 coef = _mm256_mul_ps(_mm256_mul_ps(g, sg), _mm256_blendv_ps(bcast(neg_sos), bcast(-neg_sos),
                                                                             _mm256_cmp_ps(xk, zero, _CMP_LT_OQ)));
    const __m256 px = _mm256_sub_ps(_mm256_cvtepi32_ps(col), ax), py = _mm256_sub_ps(_mm256_cvtepi32_ps(row), ay);
    const __m256 len2 = _mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(ex, ex), _mm256_mul_ps(ey, ey)), bcast(1e-20f));
    const __m256 dot = _mm256_add_ps(_mm256_mul_ps(px, ex), _mm256_mul_ps(py, ey));
    const __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(dot, len2), zero), bcast(1.0f));
    const __m256 rx = _mm256_sub_ps(px, _mm256_mul_ps(t, ex)), ry = _mm256_sub_ps(py, _mm256_mul_ps(t, ey));
    const __m256 wb = _mm256_mul_ps(_mm256_mul_ps(coef, t), neg_two);
    const __m256 wa = _mm256_sub_ps(_mm256_mul_ps(coef, neg_two), wb);
    _mm256_store_si256(reinterpret_cast<__m256i*>(ia_s), ia);
    _mm256_store_si256(reinterpret_cast<__m256i*>(ib_s), ib);
    const __m256 wax = _mm256_mul_ps(wa, rx), way = _mm256_mul_ps(wa, ry);
    const __m256 wbx = _mm256_mul_ps(wb, rx), wby = _mm256_mul_ps(wb, ry);
    _mm256_store_ps(wa_xy, _mm256_unpacklo_ps(wax, way));
    _mm256_store_ps(wa_xy + 8, _mm256_unpackhi_ps(wax, way));
    _mm256_store_ps(wb_xy, _mm256_unpacklo_ps(wbx, wby));
    _mm256_store_ps(wb_xy + 8, _mm256_unpackhi_ps(wbx, wby));
    for (int l = 0; l < m; ++l) {  // each vertex's (x, y) as one 64-bit load, add and store
      add_xy(grad + 2 * ia_s[l], wa_xy + slot[l]);
      add_xy(grad + 2 * ib_s[l], wb_xy + slot[l]);
    }
  }
}
#endif

template <typename T>
torch::Tensor backward_impl(const torch::Tensor& grad_alpha, const torch::Tensor& log_trans, const torch::Tensor& xy,
                            const torch::Tensor& faces, const torch::Tensor& pix, const torch::Tensor& edge,
                            const torch::Tensor& x, int64_t S, double scale_over_sigma) {
  const int64_t B = xy.size(0), V = xy.size(1), F = faces.size(0), P = pix.numel(), SS = S * S;
  auto grad = torch::zeros_like(xy);
  const int64_t* pd = pix.data_ptr<int64_t>();
  const int64_t* ed = edge.data_ptr<int64_t>();
  const auto faces32 = faces.to(torch::kInt);
  const int32_t* fd = faces32.data_ptr<int32_t>();
  const T* xd = x.data_ptr<T>();
  const T* xyd = xy.data_ptr<T>();
  T* gd = grad.template data_ptr<T>();
  const T neg_sos = static_cast<T>(-scale_over_sigma);
  const auto opts = xy.options();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> g_buf(SS), sig_buf;
    for (int64_t b = begin; b < end; ++b) {
      // the pairs come in batch order: mesh b's are those with b·S² <= pix < (b+1)·S²
      const int64_t lo = std::lower_bound(pd, pd + P, b * SS) - pd;
      const int64_t hi = std::lower_bound(pd + lo, pd + P, (b + 1) * SS) - pd;
      if (lo == hi) continue;
      // the transcendental parts as vectorised tensor operations, on small per-mesh buffers (fresh memory is slow):
      // 1 − alpha = exp(log_trans), p_k = sigmoid(−x)
      auto g = torch::from_blob(g_buf.data(), {SS}, opts);
      at::exp_out(g, log_trans.narrow(0, b * SS, SS)).mul_(grad_alpha.narrow(0, b * SS, SS));
      sig_buf.resize(hi - lo);
      auto sig = torch::from_blob(sig_buf.data(), {hi - lo}, opts);
      at::neg_out(sig, x.narrow(0, lo, hi - lo)).sigmoid_();
      mesh_backward<T>(g_buf.data(), sig_buf.data(), xyd + b * V * 2, fd, pd + lo, ed + lo, xd + lo, hi - lo, b * SS,
                       3 * b * F, S, neg_sos, gd + b * V * 2);
    }
  });
  return grad;
}

// The truncation to the k nearest faces per pixel (soft_rasterizer._beyond_nearest_k, same order): every pair that
// is not among the k nearest in z at its pixel gets x = +inf. Only pixels covered by more than k faces are sorted,
// each on its own by the same key as the PyTorch path's one global sort — z as an order-preserving integer rounded
// to drop its 4 lowest bits (more where the global key (crowded pixel, z, edge) would not fit in 63 bits), then the
// edge index —
// so the same pairs are dropped; sorting each pixel's few pairs instead of all crowded pairs at once is what is
// saved. Returns the number of pairs dropped.
inline int64_t sortable_z(float z, int zbits) {
  int32_t raw;
  std::memcpy(&raw, &z, sizeof raw);
  const int64_t bits = static_cast<int64_t>(raw) & 0xFFFFFFFFLL;
  const int64_t key = bits >= (int64_t(1) << 31) ? 0xFFFFFFFFLL - bits : bits + (int64_t(1) << 31);
  const int shift = 32 - zbits;  // rounded to the nearest bucket, as the PyTorch path does
  return std::min((key + (int64_t(1) << (shift - 1))) >> shift, (int64_t(1) << zbits) - 1);
}

inline int bit_length(int64_t v) {
  int n = 0;
  for (; v > 0; v >>= 1) ++n;
  return n;
}

template <typename T>
int64_t drop_beyond_nearest_k_impl(const torch::Tensor& pix, const torch::Tensor& edge, const torch::Tensor& z,
                                   torch::Tensor& x, int64_t k, int64_t num_pixels, int64_t num_edges) {
  const int64_t n = pix.numel();
  const int64_t* p = pix.data_ptr<int64_t>();
  const int64_t* e = edge.data_ptr<int64_t>();
  const T* zp = z.data_ptr<T>();
  T* xp = x.data_ptr<T>();
  std::vector<int32_t> count(num_pixels, 0);
  for (int64_t i = 0; i < n; ++i) ++count[p[i]];
  // start[q]: the first slot of crowded pixel q's pairs (−1: not crowded), in pixel order
  std::vector<int64_t> start(num_pixels, -1);
  std::vector<int64_t> crowded;
  int64_t slots = 0;
  for (int64_t q = 0; q < num_pixels; ++q) {
    if (count[q] > k) {
      start[q] = slots;
      slots += count[q];
      crowded.push_back(q);
    }
  }
  if (crowded.empty()) return 0;
  const int pbits = std::max(1, bit_length(static_cast<int64_t>(crowded.size()) - 1));
  const int fbits = std::max(1, bit_length(num_edges - 1));
  const int zbits = std::min(32 - 4, 63 - pbits - fbits);  // soft_rasterizer.Z_ROUNDED_BITS
  TORCH_CHECK(zbits >= 16, "too many pixels x faces to rank by depth (", pbits, " + ", fbits, " key bits)");
  std::vector<std::pair<int64_t, int64_t>> keyed(slots);  // (z key << fbits | edge, pair index)
  std::vector<int64_t> fill(start);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = start[p[i]];
    if (s < 0) continue;
    keyed[fill[p[i]]++] = {(sortable_z(static_cast<float>(zp[i]), zbits) << fbits) | e[i], i};
  }
  std::vector<int64_t> dropped(crowded.size(), 0);
  at::parallel_for(0, static_cast<int64_t>(crowded.size()), 256, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t q = crowded[c];
      auto first = keyed.begin() + start[q], last = first + count[q];
      std::nth_element(first, first + k, last);  // keys are unique: one pair per face and pixel
      for (auto it = first + k; it != last; ++it) xp[it->second] = std::numeric_limits<T>::infinity();
      dropped[c] = count[q] - k;
    }
  });
  int64_t total = 0;
  for (const int64_t d : dropped) total += d;
  return total;
}

void check_inputs(const torch::Tensor& xy, const torch::Tensor& faces, int64_t S) {
  TORCH_CHECK(xy.device().is_cpu() && faces.device().is_cpu(), "soft_native runs on CPU tensors only");
  TORCH_CHECK(xy.dim() == 3 && xy.size(2) == 2 && xy.is_contiguous(), "xy must be a contiguous B×V×2 tensor");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kLong && faces.is_contiguous(),
              "faces must be a contiguous F×3 int64 tensor");
  // a mesh's pixel and edge indices are int32, and edge / 3 is found through float
  TORCH_CHECK(S > 0 && S * S < (int64_t(1) << 31) && faces.size(0) < (int64_t(1) << 22),
              "image_size or the number of faces is too large");
}

std::vector<torch::Tensor> pairs(const torch::Tensor& xy, const torch::Tensor& z, const torch::Tensor& faces, int64_t S,
                                 double r_px, double scale_over_sigma, double blur_px2) {
  check_inputs(xy, faces, S);
  TORCH_CHECK(z.numel() == 0 || (z.scalar_type() == xy.scalar_type() && z.is_contiguous() && z.dim() == 2 &&
                                 z.size(0) == xy.size(0) && z.size(1) == xy.size(1)),
              "z must be empty or a contiguous B×V tensor of xy's dtype");
  std::vector<torch::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(xy.scalar_type(), "soft_native_pairs", [&] {
    out = pairs_impl<scalar_t>(xy, z, faces, S, r_px, scale_over_sigma, blur_px2);
  });
  return out;
}

torch::Tensor backward(const torch::Tensor& grad_alpha, const torch::Tensor& log_trans, const torch::Tensor& xy,
                       const torch::Tensor& faces, const torch::Tensor& pix, const torch::Tensor& edge,
                       const torch::Tensor& x, int64_t S, double scale_over_sigma) {
  check_inputs(xy, faces, S);
  const int64_t n = xy.size(0) * S * S;
  for (const auto* t : {&grad_alpha, &log_trans})
    TORCH_CHECK(t->numel() == n && t->is_contiguous() && t->scalar_type() == xy.scalar_type(),
                "grad_alpha and log_trans must be contiguous, B·S² long and of xy's dtype");
  TORCH_CHECK(pix.scalar_type() == torch::kLong && edge.scalar_type() == torch::kLong && pix.is_contiguous() &&
                  edge.is_contiguous() && x.is_contiguous() && x.scalar_type() == xy.scalar_type() &&
                  pix.numel() == edge.numel() && pix.numel() == x.numel(),
              "pix, edge (int64) and x must be contiguous and of one length");
  torch::Tensor grad;
  AT_DISPATCH_FLOATING_TYPES(xy.scalar_type(), "soft_native_backward", [&] {
    grad = backward_impl<scalar_t>(grad_alpha, log_trans, xy, faces, pix, edge, x, S, scale_over_sigma);
  });
  return grad;
}

int64_t drop_beyond_nearest_k(const torch::Tensor& pix, const torch::Tensor& edge, const torch::Tensor& z,
                               torch::Tensor x, int64_t k, int64_t num_pixels, int64_t num_edges) {
  TORCH_CHECK(k > 0 && num_pixels >= 0 && num_edges > 0, "k and num_edges must be positive");
  TORCH_CHECK(pix.device().is_cpu() && pix.scalar_type() == torch::kLong && edge.scalar_type() == torch::kLong &&
                  pix.is_contiguous() && edge.is_contiguous() && z.is_contiguous() && x.is_contiguous() &&
                  z.scalar_type() == x.scalar_type() && pix.numel() == edge.numel() && pix.numel() == z.numel() &&
                  pix.numel() == x.numel(),
              "pix, edge (int64), z and x must be contiguous CPU tensors of one length, z and x of one dtype");
  if (pix.numel()) {
    const auto [lo, hi] = torch::aminmax(pix);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < num_pixels, "pix outside [0, num_pixels)");
  }
  int64_t dropped = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "soft_native_nearest_k", [&] {
    dropped = drop_beyond_nearest_k_impl<scalar_t>(pix, edge, z, x, k, num_pixels, num_edges);
  });
  return dropped;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pairs", &pairs, "Covering (pixel, face) pairs: (pix, edge, x, z or empty)");
  m.def("backward", &backward, "Gradient of the soft silhouette with respect to the vertices' x, y");
  m.def("drop_beyond_nearest_k", &drop_beyond_nearest_k,
        "x = +inf (in place) for the pairs beyond the k nearest in z at their pixel; returns how many");
}
