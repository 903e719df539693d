// tandem-ocr: reads the text in a PNG with the PaddleOCR models, run by tandem's engine.
//
//   tandem-ocr [--image FILE] [--models DIR] [--expect TEXT [--min-accuracy 0.95]]
//
// Pipeline (docs/demo.md): PNG -> detector (probability map of text pixels) -> DB
// post-processing (threshold, connected regions, minimum-area rectangles, scored and
// expanded) -> each box cropped and turned horizontal -> direction classifier (0 or 180
// degrees) -> recogniser -> greedy CTC decoding with the character list.
// Images are fed in BGR order, as the models were trained (PaddleOCR reads images with OpenCV).
#include <png.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "tandem/engine.h"

#ifndef TANDEM_OCR_DEFAULT_IMAGE
#define TANDEM_OCR_DEFAULT_IMAGE "examples/images/sentence1.png"
#endif
#ifndef TANDEM_OCR_MODELS_DIR
#define TANDEM_OCR_MODELS_DIR "models"
#endif

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// ---- images ------------------------------------------------------------------------------

// An 8-bit image, interleaved channels, in BGR order when it has three.
struct Image {
  int w = 0, h = 0, c = 3;
  std::vector<uint8_t> px;
  uint8_t at(int x, int y, int ch) const { return px[(static_cast<size_t>(y) * w + x) * c + ch]; }
};

// Reads a PNG (any colour type, composited on white) into BGR. Returns an error line on failure.
std::optional<std::string> read_png(const std::string& path, Image& out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return "cannot open " + path + ": it is a folder";
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "cannot open " + path + ": " + std::strerror(errno);
  unsigned char sig[8] = {};
  size_t n = std::fread(sig, 1, 8, f);
  std::fclose(f);
  if (n != 8 || png_sig_cmp(sig, 0, 8) != 0) return path + " is not a PNG file";
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return "cannot read PNG " + path + ": " + img.message;
  img.format = PNG_FORMAT_BGR;
  std::vector<uint8_t> buf(PNG_IMAGE_SIZE(img));
  png_color white{255, 255, 255};
  if (!png_image_finish_read(&img, &white, buf.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    return "cannot decode PNG " + path + ": " + msg;
  }
  if (img.width == 0 || img.height == 0) return path + " has no pixels";
  out.w = static_cast<int>(img.width);
  out.h = static_cast<int>(img.height);
  out.c = 3;
  out.px = std::move(buf);
  return std::nullopt;
}

// Bilinear resize with half-pixel centres (the usual image-library convention).
Image resize(const Image& src, int w, int h) {
  Image dst;
  dst.w = w, dst.h = h, dst.c = src.c;
  dst.px.resize(static_cast<size_t>(w) * h * src.c);
  const double sx = static_cast<double>(src.w) / w, sy = static_cast<double>(src.h) / h;
  for (int y = 0; y < h; ++y) {
    double fy = std::clamp((y + 0.5) * sy - 0.5, 0.0, src.h - 1.0);
    int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, src.h - 1);
    double wy = fy - y0;
    for (int x = 0; x < w; ++x) {
      double fx = std::clamp((x + 0.5) * sx - 0.5, 0.0, src.w - 1.0);
      int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, src.w - 1);
      double wx = fx - x0;
      for (int ch = 0; ch < src.c; ++ch) {
        double v = (1 - wy) * ((1 - wx) * src.at(x0, y0, ch) + wx * src.at(x1, y0, ch)) +
                   wy * ((1 - wx) * src.at(x0, y1, ch) + wx * src.at(x1, y1, ch));
        dst.px[(static_cast<size_t>(y) * w + x) * src.c + ch] =
            static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
      }
    }
  }
  return dst;
}

Image rotate90_ccw(const Image& s) {  // the top row becomes the left column, read bottom-up
  Image d;
  d.w = s.h, d.h = s.w, d.c = s.c;
  d.px.resize(s.px.size());
  for (int y = 0; y < d.h; ++y)
    for (int x = 0; x < d.w; ++x)
      for (int ch = 0; ch < s.c; ++ch) d.px[(static_cast<size_t>(y) * d.w + x) * s.c + ch] = s.at(s.w - 1 - y, x, ch);
  return d;
}

Image sub_image(const Image& s, int x0, int w) {  // columns [x0, x0 + w), all rows
  Image d;
  d.w = w, d.h = s.h, d.c = s.c;
  d.px.resize(static_cast<size_t>(w) * s.h * s.c);
  for (int y = 0; y < s.h; ++y)
    std::memcpy(&d.px[static_cast<size_t>(y) * w * s.c], &s.px[(static_cast<size_t>(y) * s.w + x0) * s.c],
                static_cast<size_t>(w) * s.c);
  return d;
}

Image rotate180(const Image& s) {
  Image d = s;
  for (int y = 0; y < s.h; ++y)
    for (int x = 0; x < s.w; ++x)
      for (int ch = 0; ch < s.c; ++ch)
        d.px[(static_cast<size_t>(y) * s.w + x) * s.c + ch] = s.at(s.w - 1 - x, s.h - 1 - y, ch);
  return d;
}

// NCHW float tensor of `img` placed at the left of a `width`-wide canvas (the rest zero),
// each channel normalized as (v / 255 - mean) / std.
tandem::Tensor to_tensor(const Image& img, int width, const std::array<float, 3>& mean,
                         const std::array<float, 3>& std_) {
  tandem::Tensor t(tandem::DataType::float32, {1, 3, img.h, width});
  float* p = t.data<float>();
  const size_t plane = static_cast<size_t>(img.h) * width;
  for (int ch = 0; ch < 3; ++ch)
    for (int y = 0; y < img.h; ++y)
      for (int x = 0; x < img.w && x < width; ++x)
        p[ch * plane + static_cast<size_t>(y) * width + x] = (img.at(x, y, ch) / 255.0f - mean[ch]) / std_[ch];
  return t;
}

// ---- geometry ----------------------------------------------------------------------------

struct Pt {
  double x = 0, y = 0;
};
Pt operator-(Pt a, Pt b) { return {a.x - b.x, a.y - b.y}; }
Pt operator+(Pt a, Pt b) { return {a.x + b.x, a.y + b.y}; }
Pt operator*(Pt a, double s) { return {a.x * s, a.y * s}; }
double cross(Pt a, Pt b) { return a.x * b.y - a.y * b.x; }
double dot(Pt a, Pt b) { return a.x * b.x + a.y * b.y; }
double norm(Pt a) { return std::sqrt(dot(a, a)); }

// A rotated rectangle: centre, unit axis u (along the width), width and height.
struct RotRect {
  Pt center, u{1, 0};
  double w = 0, h = 0;
  // Corners in order top-left, top-right, bottom-right, bottom-left (image coordinates, y down).
  std::array<Pt, 4> corners() const {
    Pt v{-u.y, u.x};
    std::array<Pt, 4> c = {center - u * (w / 2) - v * (h / 2), center + u * (w / 2) - v * (h / 2),
                           center + u * (w / 2) + v * (h / 2), center - u * (w / 2) + v * (h / 2)};
    return c;
  }
};

std::vector<Pt> convex_hull(std::vector<Pt> p) {
  std::sort(p.begin(), p.end(), [](Pt a, Pt b) { return a.x < b.x || (a.x == b.x && a.y < b.y); });
  p.erase(std::unique(p.begin(), p.end(), [](Pt a, Pt b) { return a.x == b.x && a.y == b.y; }), p.end());
  if (p.size() < 3) return p;
  std::vector<Pt> h(2 * p.size());
  size_t k = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    while (k >= 2 && cross(h[k - 1] - h[k - 2], p[i] - h[k - 2]) <= 0) --k;
    h[k++] = p[i];
  }
  for (size_t i = p.size() - 1, t = k + 1; i-- > 0;) {
    while (k >= t && cross(h[k - 1] - h[k - 2], p[i] - h[k - 2]) <= 0) --k;
    h[k++] = p[i];
  }
  h.resize(k - 1);
  return h;
}

// The smallest-area rectangle around the points: one side lies along an edge of the hull.
RotRect min_area_rect(const std::vector<Pt>& pts) {
  std::vector<Pt> hull = convex_hull(pts);
  RotRect best;
  if (hull.empty()) return best;
  if (hull.size() < 3) {
    Pt a = hull.front(), b = hull.back();
    double len = norm(b - a);
    best.center = (a + b) * 0.5;
    best.u = len > 0 ? (b - a) * (1 / len) : Pt{1, 0};
    best.w = len, best.h = 0;
    return best;
  }
  double best_area = INFINITY;
  for (size_t i = 0; i < hull.size(); ++i) {
    Pt e = hull[(i + 1) % hull.size()] - hull[i];
    double len = norm(e);
    if (len == 0) continue;
    Pt u = e * (1 / len), v{-u.y, u.x};
    double umin = INFINITY, umax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
    for (Pt q : hull) {
      umin = std::min(umin, dot(q, u)), umax = std::max(umax, dot(q, u));
      vmin = std::min(vmin, dot(q, v)), vmax = std::max(vmax, dot(q, v));
    }
    double area = (umax - umin) * (vmax - vmin);
    if (area < best_area) {
      best_area = area;
      best.u = u, best.w = umax - umin, best.h = vmax - vmin;
      best.center = u * ((umin + umax) / 2) + v * ((vmin + vmax) / 2);
    }
  }
  // Make the width axis the more horizontal one, pointing right.
  if (std::abs(best.u.x) < std::abs(best.u.y)) {
    best.u = {-best.u.y, best.u.x};
    std::swap(best.w, best.h);
  }
  if (best.u.x < 0) best.u = best.u * -1;
  return best;
}

bool inside_convex(const std::array<Pt, 4>& q, Pt p) {
  bool pos = false, neg = false;
  for (int i = 0; i < 4; ++i) {
    double c = cross(q[(i + 1) % 4] - q[i], p - q[i]);
    pos |= c > 0, neg |= c < 0;
  }
  return !(pos && neg);
}

// ---- detection post-processing (DB) ------------------------------------------------------

struct Box {
  std::array<Pt, 4> quad;  // original-image coordinates: tl, tr, br, bl
  double score = 0;
};

struct DbParams {
  float thresh = 0.3f;        // pixel threshold on the probability map
  double box_thresh = 0.6;    // mean probability inside a box
  double unclip_ratio = 1.5;  // expansion: distance = area * ratio / perimeter
  double min_size = 3;        // shorter side below this (in map pixels): dropped
};

std::vector<Box> db_postprocess(const float* prob, int mw, int mh, int img_w, int img_h, const DbParams& prm) {
  std::vector<uint8_t> seen(static_cast<size_t>(mw) * mh, 0);
  std::vector<Box> boxes;
  std::vector<int> stack;
  const double sx = static_cast<double>(img_w) / mw, sy = static_cast<double>(img_h) / mh;
  for (int y0 = 0; y0 < mh; ++y0)
    for (int x0 = 0; x0 < mw; ++x0) {
      size_t i0 = static_cast<size_t>(y0) * mw + x0;
      if (seen[i0] || prob[i0] <= prm.thresh) continue;
      // One 8-connected region; keep each row's leftmost and rightmost pixel (enough for the hull).
      std::map<int, std::pair<int, int>> rows;
      seen[i0] = 1;
      stack.assign(1, static_cast<int>(i0));
      while (!stack.empty()) {
        int i = stack.back();
        stack.pop_back();
        int x = i % mw, y = i / mw;
        auto [it, fresh] = rows.try_emplace(y, x, x);
        if (!fresh)
          it->second.first = std::min(it->second.first, x), it->second.second = std::max(it->second.second, x);
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            int nx = x + dx, ny = y + dy;
            if (nx < 0 || ny < 0 || nx >= mw || ny >= mh) continue;
            size_t j = static_cast<size_t>(ny) * mw + nx;
            if (seen[j] || prob[j] <= prm.thresh) continue;
            seen[j] = 1;
            stack.push_back(static_cast<int>(j));
          }
      }
      std::vector<Pt> pts;
      for (auto& [y, r] : rows)
        pts.push_back({double(r.first), double(y)}), pts.push_back({double(r.second), double(y)});
      RotRect rr = min_area_rect(pts);
      if (std::min(rr.w, rr.h) < prm.min_size) continue;
      // Score: mean probability over the map pixels inside the rectangle.
      auto q = rr.corners();
      double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
      for (Pt p : q)
        xmin = std::min(xmin, p.x), xmax = std::max(xmax, p.x), ymin = std::min(ymin, p.y), ymax = std::max(ymax, p.y);
      double sum = 0;
      int count = 0;
      for (int y = std::max(0, int(std::floor(ymin))); y <= std::min(mh - 1, int(std::ceil(ymax))); ++y)
        for (int x = std::max(0, int(std::floor(xmin))); x <= std::min(mw - 1, int(std::ceil(xmax))); ++x)
          if (inside_convex(q, {double(x), double(y)})) sum += prob[static_cast<size_t>(y) * mw + x], ++count;
      double score = count ? sum / count : 0;
      if (score < prm.box_thresh) continue;
      // Unclip: grow every side outward by area * ratio / perimeter.
      double d = rr.w * rr.h * prm.unclip_ratio / (2 * (rr.w + rr.h));
      rr.w += 2 * d, rr.h += 2 * d;
      if (std::min(rr.w, rr.h) < prm.min_size + 2) continue;
      Box b;
      b.score = score;
      q = rr.corners();
      for (int k = 0; k < 4; ++k)
        b.quad[k] = {std::clamp(q[k].x * sx, 0.0, img_w - 1.0), std::clamp(q[k].y * sy, 0.0, img_h - 1.0)};
      boxes.push_back(b);
    }
  // Reading order: top to bottom, then left to right for boxes on about the same line.
  std::sort(boxes.begin(), boxes.end(), [](const Box& a, const Box& b) { return a.quad[0].y < b.quad[0].y; });
  for (size_t i = 1; i < boxes.size(); ++i)
    for (size_t j = i; j > 0 && std::abs(boxes[j].quad[0].y - boxes[j - 1].quad[0].y) < 10 &&
                       boxes[j].quad[0].x < boxes[j - 1].quad[0].x;
         --j)
      std::swap(boxes[j], boxes[j - 1]);
  return boxes;
}

// Samples the quadrilateral `q` (tl, tr, br, bl) into an upright image, bilinear, edges replicated.
Image crop_quad(const Image& img, const std::array<Pt, 4>& q) {
  int w = std::max(1, int(std::max(norm(q[1] - q[0]), norm(q[2] - q[3]))));
  int h = std::max(1, int(std::max(norm(q[3] - q[0]), norm(q[2] - q[1]))));
  Image out;
  out.w = w, out.h = h, out.c = img.c;
  out.px.resize(static_cast<size_t>(w) * h * img.c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      // Bilinear interpolation of the corners: exact for the parallelograms the detector gives.
      double s = (x + 0.5) / w, t = (y + 0.5) / h;
      Pt top = q[0] + (q[1] - q[0]) * s, bottom = q[3] + (q[2] - q[3]) * s;
      Pt p = top + (bottom - top) * t;
      double fx = std::clamp(p.x - 0.5, 0.0, img.w - 1.0), fy = std::clamp(p.y - 0.5, 0.0, img.h - 1.0);
      int x0 = int(fx), y0 = int(fy), x1 = std::min(x0 + 1, img.w - 1), y1 = std::min(y0 + 1, img.h - 1);
      double wx = fx - x0, wy = fy - y0;
      for (int ch = 0; ch < img.c; ++ch) {
        double v = (1 - wy) * ((1 - wx) * img.at(x0, y0, ch) + wx * img.at(x1, y0, ch)) +
                   wy * ((1 - wx) * img.at(x0, y1, ch) + wx * img.at(x1, y1, ch));
        out.px[(static_cast<size_t>(y) * w + x) * img.c + ch] = static_cast<uint8_t>(std::lround(v));
      }
    }
  return out;
}

// ---- text ----------------------------------------------------------------------------------

// Splits UTF-8 text into code points (as strings), for the edit distance.
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  std::iota(prev.begin(), prev.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---- the models ----------------------------------------------------------------------------

struct Model {
  std::shared_ptr<tandem::PreparedModel> prepared;
  std::string input;
  double prepare_ms = 0;
};

struct Stage {
  double ms = 0;
  int calls = 0;
  std::string served_by;
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "tandem-ocr: error: %s\n", msg.c_str());
  return 1;
}

const tandem::Tensor* first_output(const tandem::InferResult& r) {
  if (r.output_order.empty()) return nullptr;
  auto it = r.outputs.find(r.output_order.front());
  if (it == r.outputs.end() || !it->second.is_tensor() || it->second.tensor.dtype() != tandem::DataType::float32)
    return nullptr;
  return &it->second.tensor;
}

std::string placement_line(const tandem::PreparedModel& m) {
  const auto& routes = m.placement().routes;
  if (routes.empty()) return "(no routes)";
  std::string s = "route " + routes.front().backend + ":";
  for (const auto& [backend, n] : routes.front().nodes_per_backend)
    s += " " + backend + " " + std::to_string(n) + " nodes";
  s += " (" + std::to_string(routes.front().segments) + " segments)";
  return s;
}

void usage() {
  std::printf(
      "usage: tandem-ocr [--image FILE] [--models DIR] [--expect TEXT] [--min-accuracy F] [--repeat N] [--no-cls] "
      "[--verbose]\n"
      "  --image FILE      PNG to read (default %s)\n"
      "  --models DIR      folder with the PaddleOCR models and ppocr_keys_v1.txt (default %s)\n"
      "  --expect TEXT     the text the image holds: prints the character accuracy\n"
      "  --min-accuracy F  with --expect: exit 3 when the accuracy is below F (default 0.95)\n"
      "  --repeat N        run the pipeline N times, report the last run's timings\n"
      "  --no-cls          never turn a line by 180 degrees\n"
      "  --verbose         also print every box as read, before the confidence filter\n",
      TANDEM_OCR_DEFAULT_IMAGE, TANDEM_OCR_MODELS_DIR);
}

}  // namespace

int main(int argc, char** argv) {
  std::string image_path = TANDEM_OCR_DEFAULT_IMAGE, models_dir = TANDEM_OCR_MODELS_DIR;
  std::optional<std::string> expect;
  double min_accuracy = 0.95;
  bool verbose = false, use_cls = true;
  int repeat = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](std::string& v) {
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "--repeat" && next(v)) {
      repeat = std::atoi(v.c_str());
      if (repeat < 1 || repeat > 1000) return fail("--repeat: expected 1..1000, got " + v);
    } else if (a == "--no-cls") {
      use_cls = false;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--image" && next(v)) {
      image_path = v;
    } else if (a == "--models" && next(v)) {
      models_dir = v;
    } else if (a == "--expect" && next(v)) {
      expect = v;
    } else if (a == "--min-accuracy" && next(v)) {
      char* end = nullptr;
      min_accuracy = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end) return fail("--min-accuracy: not a number: " + v);
    } else {
      usage();
      return fail("unknown or incomplete option: " + a);
    }
  }

  const auto t_total = Clock::now();
  // The image.
  auto t = Clock::now();
  Image img;
  if (auto err = read_png(image_path, img)) return fail(*err);
  const double read_ms = ms_since(t);

  // The character list: class 0 is the CTC blank, then one class per line, then a space.
  std::vector<std::string> keys{""};
  {
    std::ifstream in(models_dir + "/ppocr_keys_v1.txt");
    if (!in) return fail("cannot open " + models_dir + "/ppocr_keys_v1.txt (scripts/setup fetches it)");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      keys.push_back(line);
    }
    keys.push_back(" ");
  }

  // The engine, and the three models on the cpu backend (nodes it declines run on the
  // reference backend). Compiled for any input shape, no warm-up, no time budget.
  auto engine = tandem::Engine::create({});
  if (!engine) return fail("engine: " + engine.status().to_string());
  auto prepare = [&](const std::string& file, Model& m) -> std::optional<std::string> {
    auto t0 = Clock::now();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(models_dir + "/" + file, ec))
      return "cannot open " + models_dir + "/" + file + " (scripts/setup fetches it)";
    tandem::PrepareOptions po;
    po.routes = {"cpu"};
    po.fallback = tandem::FallbackPolicy::strict;
    po.warmup_runs = 0;
    po.unmeasured_budget_ms = INFINITY;
    auto p = (*engine)->prepare(models_dir + "/" + file, po);
    if (!p) return file + ": " + p.status().to_string();
    m.prepared = *p;
    if (m.prepared->io_schema().inputs.empty()) return file + ": the model has no inputs";
    m.input = m.prepared->io_schema().inputs.front().name;
    m.prepare_ms = ms_since(t0);
    return std::nullopt;
  };
  Model det, cls, rec;
  if (auto e = prepare("ch_PP-OCRv4_det_infer.onnx", det)) return fail(*e);
  if (auto e = prepare("ch_ppocr_mobile_v2.0_cls_infer.onnx", cls)) return fail(*e);
  if (auto e = prepare("ch_PP-OCRv4_rec_infer.onnx", rec)) return fail(*e);

  auto run = [&](Model& m, tandem::Tensor x, Stage& st) -> tandem::Result<tandem::InferResult> {
    auto t0 = Clock::now();
    auto r = m.prepared->infer({{m.input, tandem::Value::of(std::move(x))}});
    st.ms += ms_since(t0);
    ++st.calls;
    if (r) st.served_by = r->backend;
    return r;
  };

  struct Line {
    Box box;
    std::string text;
    double conf = 0;
    bool flipped = false, cls_180 = false;
    double cls_score = 0;
  };
  std::vector<Line> lines;
  Stage det_pre, det_run, det_post, crop_st, cls_run, rec_run, decode_st;
  std::vector<Box> boxes;
  const double limit = 960;
  const double ratio = std::max(img.w, img.h) > limit ? limit / std::max(img.w, img.h) : 1.0;
  const int dw = std::max(32, int(std::lround(img.w * ratio / 32)) * 32);
  const int dh = std::max(32, int(std::lround(img.h * ratio / 32)) * 32);
  double first_ms = 0, pipeline_ms = 0;
  // --repeat N runs the pipeline N times and reports the last run: the first call of a model
  // at a new input shape also pays for compiling the kernels for that shape.
  for (int iter = 0; iter < repeat; ++iter) {
    const auto t_iter = Clock::now();
    det_pre = det_run = det_post = crop_st = cls_run = rec_run = decode_st = Stage{};
    lines.clear();
    // Detection: longest side at most 960, both sides multiples of 32; ImageNet mean and std.
    t = Clock::now();
    tandem::Tensor det_in = to_tensor(resize(img, dw, dh), dw, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f});
    det_pre.ms = ms_since(t);
    auto det_r = run(det, det_in, det_run);
    if (!det_r) return fail("detector: " + det_r.status().to_string());
    const tandem::Tensor* prob = first_output(*det_r);
    if (!prob || prob->rank() != 4 || prob->dim(2) != dh || prob->dim(3) != dw)
      return fail("detector: unexpected output");
    t = Clock::now();
    boxes = db_postprocess(prob->data<float>(), dw, dh, img.w, img.h, DbParams{});
    det_post.ms = ms_since(t);

    for (const Box& b : boxes) {
      Line ln;
      ln.box = b;
      t = Clock::now();
      Image crop = crop_quad(img, b.quad);
      if (crop.h >= 1.5 * crop.w) crop = rotate90_ccw(crop);  // a vertical box: read it sideways
      crop_st.ms += ms_since(t);

      // Direction: 48x192, (x/255 - 0.5) / 0.5. A long line squeezed into 192 columns confuses
      // the classifier, so a line wider than 4:1 is judged on up to three 4:1 windows at its
      // natural scale (left, middle, right), their probabilities averaged.
      {
        const int win = std::max(1, 4 * crop.h);
        const int n = crop.w <= win ? 1 : std::min(3, (crop.w + win - 1) / win);
        double p0 = 0, p1 = 0;
        for (int k = 0; k < n; ++k) {
          Image part = crop;
          if (n > 1) part = sub_image(crop, (crop.w - win) * k / (n - 1), win);
          int cw = std::min(192, std::max(1, int(std::ceil(48.0 * part.w / part.h))));
          auto r = run(cls, to_tensor(resize(part, cw, 48), 192, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}), cls_run);
          if (!r) return fail("direction classifier: " + r.status().to_string());
          const tandem::Tensor* p = first_output(*r);
          if (!p || p->numel() != 2) return fail("direction classifier: unexpected output");
          p0 += p->data<float>()[0] / n, p1 += p->data<float>()[1] / n;
        }
        ln.cls_score = std::max(p0, p1);
        ln.cls_180 = p1 > p0;
        if (use_cls && p1 > p0 && p1 >= 0.9) {
          crop = rotate180(crop);
          ln.flipped = true;
        }
      }
      // Recognition: height 48, width in proportion, padded to a multiple of 32 (at least 320).
      {
        int rw = std::max(1, int(std::ceil(48.0 * crop.w / crop.h)));
        int padded = std::max(320, (rw + 31) / 32 * 32);
        auto r = run(rec, to_tensor(resize(crop, rw, 48), padded, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}), rec_run);
        if (!r) return fail("recogniser: " + r.status().to_string());
        const tandem::Tensor* p = first_output(*r);
        if (!p || p->rank() != 3) return fail("recogniser: unexpected output");
        if (p->dim(2) != static_cast<int64_t>(keys.size()))
          return fail("recogniser: " + std::to_string(p->dim(2)) + " classes but the character list gives " +
                      std::to_string(keys.size()));
        t = Clock::now();
        // Greedy CTC: the best class per step; repeats merged, blanks dropped.
        const float* s = p->data<float>();
        const int64_t steps = p->dim(1), classes = p->dim(2);
        int64_t last = -1;
        double conf_sum = 0;
        int kept = 0;
        for (int64_t k = 0; k < steps; ++k) {
          const float* row = s + k * classes;
          int64_t best = std::max_element(row, row + classes) - row;
          if (best != 0 && best != last) ln.text += keys[best], conf_sum += row[best], ++kept;
          last = best;
        }
        ln.conf = kept ? conf_sum / kept : 0;
        decode_st.ms += ms_since(t);
      }
      if (verbose && iter == 0)
        std::printf("box %zu: crop %dx%d, direction %s score %.3f, read \"%s\" (confidence %.3f)\n", lines.size() + 1,
                    crop.w, crop.h, ln.cls_180 ? "180" : "0", ln.cls_score, ln.text.c_str(), ln.conf);
      if (ln.conf >= 0.5 && !ln.text.empty()) lines.push_back(ln);
    }
    // A page whose lines mostly read upside down is upside down: read its lines bottom-up.
    size_t flipped = std::count_if(lines.begin(), lines.end(), [](const Line& l) { return l.flipped; });
    if (2 * flipped > lines.size()) std::reverse(lines.begin(), lines.end());
    pipeline_ms = ms_since(t_iter);
    if (iter == 0) first_ms = pipeline_ms;
  }
  const double total_ms = ms_since(t_total);

  std::printf("image: %s (%dx%d), detector input %dx%d\n", image_path.c_str(), img.w, img.h, dw, dh);
  std::printf("%zu text boxes, %zu lines read\n", boxes.size(), lines.size());
  std::string all;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& ln = lines[i];
    std::printf("line %zu: \"%s\"  confidence %.3f  box score %.3f  box", i + 1, ln.text.c_str(), ln.conf,
                ln.box.score);
    for (Pt q : ln.box.quad) std::printf(" (%.0f,%.0f)", q.x, q.y);
    std::printf("%s\n", ln.flipped ? "  (turned 180)" : "");
    all += (all.empty() ? "" : " ") + ln.text;
  }
  std::printf("text: %s\n", all.c_str());

  if (repeat > 1)
    std::printf("timings (ms) of run %d of %d (the first took %.1f):\n", repeat, repeat, first_ms);
  else
    std::printf("timings (ms):\n");
  std::printf("  prepare   det %.1f, cls %.1f, rec %.1f\n", det.prepare_ms, cls.prepare_ms, rec.prepare_ms);
  std::printf("  read png  %.2f\n", read_ms);
  std::printf("  detect    pre %.2f, infer %.2f, post %.2f\n", det_pre.ms, det_run.ms, det_post.ms);
  std::printf("  crop      %.2f (%zu boxes)\n", crop_st.ms, boxes.size());
  std::printf("  classify  %.2f (%d calls)\n", cls_run.ms, cls_run.calls);
  std::printf("  recognise %.2f (%d calls), ctc decode %.2f\n", rec_run.ms, rec_run.calls, decode_st.ms);
  std::printf("  pipeline  %.1f (detect to decode)\n", pipeline_ms);
  std::printf("  total     %.1f (the program: prepare and every run included)\n", total_ms);
  std::printf("placement:\n");
  std::printf("  det: served by %s; %s\n", det_run.served_by.c_str(), placement_line(*det.prepared).c_str());
  std::printf("  cls: served by %s; %s\n", cls_run.served_by.empty() ? "-" : cls_run.served_by.c_str(),
              placement_line(*cls.prepared).c_str());
  std::printf("  rec: served by %s; %s\n", rec_run.served_by.empty() ? "-" : rec_run.served_by.c_str(),
              placement_line(*rec.prepared).c_str());

  std::fflush(stdout);
  if (expect) {
    auto a = utf8_chars(all), b = utf8_chars(*expect);
    size_t d = edit_distance(a, b);
    double acc = b.empty() ? (a.empty() ? 1.0 : 0.0) : std::max(0.0, 1.0 - double(d) / double(b.size()));
    std::printf("accuracy: %.2f%% (edit distance %zu over %zu characters; expected \"%s\")\n", acc * 100, d, b.size(),
                expect->c_str());
    std::fflush(stdout);
    if (acc < min_accuracy) {
      std::fprintf(stderr, "tandem-ocr: accuracy %.2f%% is below %.2f%%\n", acc * 100, min_accuracy * 100);
      return 3;
    }
  }
  return 0;
}
