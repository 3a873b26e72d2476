// Dataset `arithmetic`: problems "a+b=c" for a decoder to learn, with a loss on the answer only.
//
//   [data]
//   type = "arithmetic"
//   digits = 3                 # operands of 1..3 digits (min_digits..digits)
//   operators = ["+"]          # any of + - *
//   reverse_answer = true      # the answer's digits written last to first
//   problems = 20000           # distinct problems, split 80/10/10
//
// Each problem is one example: "123+45=168\n" (or "=861\n" reversed), padded to the longest
// problem's length with the tokenizer's <pad> (or "\n"), and the model reads it whole. Targets are
// the next characters, kept only where they are the answer or its closing "\n": every other
// position (the operands, padding) is kIgnoreTarget, so the loss, the token accuracy and
// exact_match measure the answer alone. The problems are distinct and dealt from the seed, so no
// problem is in two splits; the same seed always gives the same splits. A subtraction's answer may
// be negative ("-"). training_text() is the alphabet, so a char tokenizer's vocabulary is fixed:
// the digits, + - *, = and "\n".
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>

#include "lmrun/dataset.h"
#include "lmrun/metric.h"
#include "lmrun/plugin.h"
#include "lmrun/rows.h"
#include "lmrun/schema.h"

namespace lmrun::datasets {
namespace {

constexpr const char* kWho = "dataset 'arithmetic': ";

struct ArithmeticOptions {
  std::int64_t digits = 3;
  std::int64_t min_digits = 1;
  std::vector<std::string> operators = {"+"};
  bool reverse_answer = false;
  std::int64_t problems = 20000;
  double val_fraction = 0.1;
  double test_fraction = 0.1;
};

struct Problem {
  std::int64_t a, b;
  char op;
};

std::int64_t power10(std::int64_t n) {
  std::int64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

std::int64_t answer(const Problem& p) {
  return p.op == '+' ? p.a + p.b : p.op == '-' ? p.a - p.b : p.a * p.b;
}

class ArithmeticDataset final : public RowDataset {
 public:
  ArithmeticDataset(ArithmeticOptions o, std::uint64_t seed) : o_(std::move(o)) {
    if (o_.min_digits > o_.digits) {
      throw Error(std::string(kWho) + "min_digits " + std::to_string(o_.min_digits) +
                  " is more than digits " + std::to_string(o_.digits));
    }
    if (o_.operators.empty()) throw Error(std::string(kWho) + "operators is empty");
    if (o_.val_fraction + o_.test_fraction >= 1.0)
      throw Error(std::string(kWho) + "val_fraction + test_fraction must be below 1");
    // How many distinct problems exist: (numbers of min..max digits)^2 per operator.
    const std::int64_t low = o_.min_digits == 1 ? 0 : power10(o_.min_digits - 1);
    const std::int64_t high = power10(o_.digits) - 1;
    const double count = static_cast<double>(high - low + 1);
    const double possible = count * count * static_cast<double>(o_.operators.size());
    if (static_cast<double>(o_.problems) > possible * 0.5) {
      throw Error(std::string(kWho) + std::to_string(o_.problems) + " distinct problems asked of " +
                      std::to_string(static_cast<std::int64_t>(possible)) + " possible",
                  "ask for at most half of them (lower `problems` or raise `digits`)");
    }
    // Distinct problems from the seed: operand lengths uniform first, so that short operands are
    // not swamped by long ones, then the digits.
    std::mt19937_64 rng(seed ^ 0xA5A5A5A5ULL);
    std::set<std::tuple<char, std::int64_t, std::int64_t>> seen;
    std::vector<Problem> all;
    auto operand = [&] {
      const std::int64_t n =
          o_.min_digits + static_cast<std::int64_t>(
                              rng() % static_cast<std::uint64_t>(o_.digits - o_.min_digits + 1));
      const std::int64_t from = n == 1 ? 0 : power10(n - 1);
      return from +
             static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(power10(n) - from));
    };
    while (static_cast<std::int64_t>(all.size()) < o_.problems) {
      const char op = o_.operators[rng() % o_.operators.size()][0];
      const std::int64_t a = operand(), b = operand();
      if (seen.emplace(op, a, b).second) all.push_back({a, b, op});
    }
    // Dealt in a shuffled order: the draws run out of short problems first (there are only 100
    // of one digit plus one digit), so dealing in draw order would put them in test, not train.
    for (std::size_t i = all.size(); i > 1; --i)
      std::swap(all[i - 1], all[static_cast<std::size_t>(rng() % i)]);
    const auto n = static_cast<std::size_t>(o_.problems);
    const auto tests = static_cast<std::size_t>(static_cast<double>(n) * o_.test_fraction);
    const auto vals = static_cast<std::size_t>(static_cast<double>(n) * o_.val_fraction);
    for (std::size_t i = 0; i < n; ++i) {
      const int s = i < tests ? 2 : i < tests + vals ? 1 : 0;
      text_[s].push_back(format(all[i]));
    }
    for (const auto& t : text_) {
      for (const auto& problem : t)
        length_ = std::max<std::int64_t>(length_, static_cast<std::int64_t>(problem.size()));
    }
  }

  Task task() const override { return Task::kLanguageModel; }
  std::string training_text() const override { return "0123456789+-*=\n"; }

  void prepare(const Tokenizer& tokenizer) override {
    const std::int64_t pad_id = tokenizer.special_id("<pad>");
    const std::vector<std::int64_t> newline = tokenizer.encode("\n");
    pad_ = pad_id >= 0 ? pad_id : newline.at(0);
    for (int s = 0; s < 3; ++s) {
      ids_[s].clear();
      answer_from_[s].clear();
      for (const auto& problem : text_[s]) {
        std::vector<std::int64_t> ids = tokenizer.encode(problem);
        if (static_cast<std::int64_t>(ids.size()) != static_cast<std::int64_t>(problem.size())) {
          throw Error(std::string(kWho) + "the tokenizer gives " + std::to_string(ids.size()) +
                          " tokens for the " + std::to_string(problem.size()) + " characters of " +
                          problem,
                      "use the char tokenizer: the answer's positions are counted in characters");
        }
        answer_from_[s].push_back(static_cast<std::int64_t>(problem.find('=')) + 1);
        ids_[s].push_back(std::move(ids));
      }
    }
  }

  bool has_split(Split split) const override { return !text_[split_index(split)].empty(); }
  std::int64_t num_examples(Split split) const override {
    return static_cast<std::int64_t>(text_[split_index(split)].size());
  }
  std::int64_t sequence_length() const override { return length_ - 1; }

 private:
  std::string who() const override { return kWho; }

  std::string format(const Problem& p) const {
    std::string c = std::to_string(answer(p));
    if (o_.reverse_answer) {
      const bool negative = !c.empty() && c[0] == '-';
      std::reverse(c.begin() + (negative ? 1 : 0), c.end());
    }
    return std::to_string(p.a) + p.op + std::to_string(p.b) + "=" + c + "\n";
  }

  // inputs: the problem without its last character, padded; targets: the next character where
  // it belongs to the answer (or its closing newline), kIgnoreTarget elsewhere.
  Batch batch(Split split, const std::vector<std::int64_t>& rows) const override {
    const int s = split_index(split);
    if (ids_[s].size() != text_[s].size())
      throw Error(std::string(kWho) + "batch before prepare()");
    const auto b = static_cast<std::int64_t>(rows.size());
    const std::int64_t t = length_ - 1;
    at::Tensor inputs = at::full({b, t}, pad_, at::kLong);
    at::Tensor targets = at::full({b, t}, kIgnoreTarget, at::kLong);
    auto in = inputs.accessor<std::int64_t, 2>();
    auto out = targets.accessor<std::int64_t, 2>();
    for (std::int64_t r = 0; r < b; ++r) {
      const auto row = static_cast<std::size_t>(rows[static_cast<std::size_t>(r)]);
      const auto& ids = ids_[s][row];
      const std::int64_t from = answer_from_[s][row];
      for (std::int64_t k = 0; k + 1 < static_cast<std::int64_t>(ids.size()); ++k) {
        in[r][k] = ids[static_cast<std::size_t>(k)];
        if (k + 1 >= from) out[r][k] = ids[static_cast<std::size_t>(k + 1)];
      }
    }
    return Batch{inputs, targets, at::Tensor()};
  }

  ArithmeticOptions o_;
  std::vector<std::string> text_[3];
  std::vector<std::vector<std::int64_t>> ids_[3];
  std::vector<std::int64_t> answer_from_[3];  // index of the first answer character
  std::int64_t length_ = 2;
  std::int64_t pad_ = 0;
};

void register_arithmetic(Registry& registry) {
  Schema<ArithmeticOptions> schema;
  schema.add("digits", &ArithmeticOptions::digits, "the most digits of an operand").min(1).max(9);
  schema.add("min_digits", &ArithmeticOptions::min_digits, "the fewest digits of an operand")
      .min(1)
      .max(9);
  schema.add("operators", &ArithmeticOptions::operators, "operators drawn from, uniformly")
      .choices({"+", "-", "*"});
  schema.add("reverse_answer", &ArithmeticOptions::reverse_answer,
             "write the answer's digits last to first (the order carries propagate in)");
  schema.add("problems", &ArithmeticOptions::problems, "distinct problems, all splits together")
      .min(10);
  schema.add("val_fraction", &ArithmeticOptions::val_fraction, "share held out for validation")
      .min(0);
  schema.add("test_fraction", &ArithmeticOptions::test_fraction, "share held out for test").min(0);
  registry.add<Dataset>("arithmetic", "a+b=c problems with the loss on the answer", schema,
                        [](const ArithmeticOptions& o, const DatasetContext& c) {
                          return std::make_shared<ArithmeticDataset>(o, c.seed);
                        });
}

}  // namespace
}  // namespace lmrun::datasets

LMRUN_PLUGIN("arithmetic", "0.1.0", lmrun::datasets::register_arithmetic)
