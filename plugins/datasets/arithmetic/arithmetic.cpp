// Dataset `arithmetic`: problems "a+b=c" for a decoder to learn, with a loss on the answer only.
//
//   [data]
//   type = "arithmetic"
//   digits = 3                 # operands of 1..3 digits (min_digits..digits)
//   operators = ["+"]          # any of + - *
//   reverse_answer = true      # the answer's digits written last to first
//   problems = 20000           # distinct problems, split 80/10/10
//   held_out_digits = [4, 5]   # extra test sets of longer operands, never trained on
//
// Each problem is one example: "123+45=168\n" (or "=861\n" reversed), padded to the longest
// problem of its split or group with the tokenizer's <pad> (or "\n"), and the model reads it
// whole; "\n" ends the answer (the end token: generation stops on it). Targets are
// the next characters, kept only where they are the answer or its closing "\n": every other
// position (the operands, padding) is kIgnoreTarget, so the loss, the token accuracy and
// exact_match measure the answer alone. The problems are distinct and dealt from the seed, so no
// problem is in two splits; the same seed always gives the same splits. A subtraction's answer may
// be negative ("-"). training_text() is the alphabet, so a char tokenizer's vocabulary is fixed:
// the digits, + - *, = and "\n".
//
// Groups (Dataset::groups): the test split by operand length ("test, 2 digits": the longer
// operand has 2), then each held-out length ("held out, 4 digits": held_out_problems distinct
// problems whose longer operand has 4 digits). Training and `lmrun eval` report every metric on
// each, the table of generalisation to longer operands. Every set pads to its own longest problem;
// sequence_length() is the longest of all, so the model has positions for the held-out lengths.
// save() writes the problems of every split and held-out set, one a line, to the run's data/.
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
#include "lmrun/util/files.h"
#include "lmrun/metric.h"
#include "lmrun/plugin.h"
#include "lmrun/util/rows.h"
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
  std::vector<std::int64_t> held_out_digits;
  std::int64_t held_out_problems = 500;
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

std::int64_t digits_of(std::int64_t n) {
  return static_cast<std::int64_t>(std::to_string(n).size());
}

// The digits of a problem's longer operand: its group.
std::int64_t operand_digits(const Problem& p) { return std::max(digits_of(p.a), digits_of(p.b)); }

// How many numbers have min_digits..digits digits (0 counts as one digit).
double numbers_between(std::int64_t min_digits, std::int64_t digits) {
  const std::int64_t low = min_digits == 1 ? 0 : power10(min_digits - 1);
  return static_cast<double>(power10(digits) - low);
}

// One set of problems: a split or a group, as text and, after prepare(), as ids.
struct ProblemSet {
  std::string name;  // a group's; empty for a split
  std::string file;  // the file save() writes it to; empty: a part of another set
  std::vector<Problem> problems;
  std::vector<std::string> text;
  std::vector<std::vector<std::int64_t>> ids;
  std::vector<std::int64_t> answer_from;  // index of the first answer character
  std::int64_t width = 1;                 // the longest problem's characters, less one
};

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
    const double possible = numbers_between(o_.min_digits, o_.digits) *
                            numbers_between(o_.min_digits, o_.digits) *
                            static_cast<double>(o_.operators.size());
    if (static_cast<double>(o_.problems) > possible * 0.5) {
      throw Error(std::string(kWho) + std::to_string(o_.problems) + " distinct problems asked of " +
                      std::to_string(static_cast<std::int64_t>(possible)) + " possible",
                  "ask for at most half of them (lower `problems` or raise `digits`)");
    }
    // Distinct problems from the seed: operand lengths uniform first, so that short operands are
    // not swamped by long ones, then the digits.
    std::mt19937_64 rng(seed ^ 0xA5A5A5A5ULL);
    auto operand = [&](std::int64_t most) {
      const std::int64_t n =
          o_.min_digits +
          static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(most - o_.min_digits + 1));
      const std::int64_t from = n == 1 ? 0 : power10(n - 1);
      return from +
             static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(power10(n) - from));
    };
    std::set<std::tuple<char, std::int64_t, std::int64_t>> seen;
    std::vector<Problem> all;
    while (static_cast<std::int64_t>(all.size()) < o_.problems) {
      const char op = o_.operators[rng() % o_.operators.size()][0];
      const std::int64_t a = operand(o_.digits), b = operand(o_.digits);
      if (seen.emplace(op, a, b).second) all.push_back({a, b, op});
    }
    // Dealt in a shuffled order: the draws run out of short problems first (there are only 100
    // of one digit plus one digit), so dealing in draw order would put them in test, not train.
    for (std::size_t i = all.size(); i > 1; --i)
      std::swap(all[i - 1], all[static_cast<std::size_t>(rng() % i)]);
    const auto n = static_cast<std::size_t>(o_.problems);
    const auto tests = static_cast<std::size_t>(static_cast<double>(n) * o_.test_fraction);
    const auto vals = static_cast<std::size_t>(static_cast<double>(n) * o_.val_fraction);
    sets_.resize(3);
    sets_[0].file = "train.txt";
    sets_[1].file = "val.txt";
    sets_[2].file = "test.txt";
    for (std::size_t i = 0; i < n; ++i) {
      const int s = i < tests ? 2 : i < tests + vals ? 1 : 0;
      sets_[static_cast<std::size_t>(s)].problems.push_back(all[i]);
    }
    // The test split by operand length, then the held-out lengths: drawn after the splits, so
    // that asking for them leaves the splits as they were.
    for (std::int64_t d = o_.min_digits; d <= o_.digits; ++d) {
      ProblemSet group;
      group.name = "test, " + std::to_string(d) + (d == 1 ? " digit" : " digits");
      for (const Problem& p : sets_[2].problems) {
        if (operand_digits(p) == d) group.problems.push_back(p);
      }
      if (!group.problems.empty()) sets_.push_back(std::move(group));
    }
    for (std::size_t i = 0; i < o_.held_out_digits.size(); ++i) {
      const std::int64_t d = o_.held_out_digits[i];
      if (std::count(o_.held_out_digits.begin(),
                     o_.held_out_digits.begin() + static_cast<std::ptrdiff_t>(i), d) > 0) {
        throw Error(std::string(kWho) + "held_out_digits names " + std::to_string(d) + " twice");
      }
      if (d <= o_.digits || d > 9) {
        throw Error(std::string(kWho) + "held_out_digits " + std::to_string(d) + " is not in " +
                        std::to_string(o_.digits + 1) + "..9",
                    "held-out operands are longer than any trained on (`digits`), and have at "
                    "most 9 digits");
      }
      const double longer =
          numbers_between(o_.min_digits, d) * numbers_between(o_.min_digits, d) -
          numbers_between(o_.min_digits, d - 1) * numbers_between(o_.min_digits, d - 1);
      if (static_cast<double>(o_.held_out_problems) > longer * 0.5) {
        throw Error(std::string(kWho) + std::to_string(o_.held_out_problems) +
                        " held-out problems of " + std::to_string(d) + " digits asked of " +
                        std::to_string(static_cast<std::int64_t>(longer)) + " possible",
                    "lower held_out_problems");
      }
      ProblemSet group;
      group.name = "held out, " + std::to_string(d) + " digits";
      group.file = "held_out_" + std::to_string(d) + "_digits.txt";
      while (static_cast<std::int64_t>(group.problems.size()) < o_.held_out_problems) {
        const char op = o_.operators[rng() % o_.operators.size()][0];
        const Problem p{operand(d), operand(d), op};
        if (operand_digits(p) == d && seen.emplace(op, p.a, p.b).second)
          group.problems.push_back(p);
      }
      sets_.push_back(std::move(group));
    }
    for (ProblemSet& set : sets_) {
      for (const Problem& p : set.problems) {
        set.text.push_back(format(p));
        const auto characters = static_cast<std::int64_t>(set.text.back().size());
        set.width = std::max(set.width, characters - 1);
        length_ = std::max(length_, characters - 1);
      }
    }
  }

  Task task() const override { return Task::kLanguageModel; }
  std::string training_text() const override { return "0123456789+-*=\n"; }

  void prepare(const Tokenizer& tokenizer) override {
    const std::int64_t pad_id = tokenizer.special_id("<pad>");
    const std::vector<std::int64_t> newline = tokenizer.encode("\n");
    pad_ = pad_id >= 0 ? pad_id : newline.at(0);
    for (ProblemSet& set : sets_) {
      set.ids.clear();
      set.answer_from.clear();
      for (const auto& problem : set.text) {
        std::vector<std::int64_t> ids = tokenizer.encode(problem);
        if (static_cast<std::int64_t>(ids.size()) != static_cast<std::int64_t>(problem.size())) {
          throw Error(std::string(kWho) + "the tokenizer gives " + std::to_string(ids.size()) +
                          " tokens for the " + std::to_string(problem.size()) + " characters of " +
                          problem,
                      "use the char tokenizer: the answer's positions are counted in characters");
        }
        set.answer_from.push_back(static_cast<std::int64_t>(problem.find('=')) + 1);
        set.ids.push_back(std::move(ids));
      }
    }
  }

  bool has_split(Split split) const override { return !split_set(split).text.empty(); }
  std::int64_t num_examples(Split split) const override {
    return static_cast<std::int64_t>(split_set(split).text.size());
  }
  std::int64_t sequence_length() const override { return length_; }

  std::vector<ExampleGroup> groups() const override {
    std::vector<ExampleGroup> groups;
    for (std::size_t g = 3; g < sets_.size(); ++g)
      groups.push_back({sets_[g].name, static_cast<std::int64_t>(sets_[g].text.size())});
    return groups;
  }

  Batch group_slice(std::size_t group, std::int64_t begin, std::int64_t end) const override {
    if (group + 3 >= sets_.size())
      throw Error(std::string(kWho) + "no example group " + std::to_string(group));
    const ProblemSet& set = sets_[group + 3];
    return batch_of(set, row_range(begin, end, static_cast<std::int64_t>(set.text.size())));
  }

  void save(const std::filesystem::path& folder) const override {
    for (const ProblemSet& set : sets_) {
      if (set.file.empty()) continue;
      std::string text;
      for (const auto& problem : set.text) text += problem;
      write_file_atomic(folder / set.file, text);
    }
  }

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

  const ProblemSet& split_set(Split split) const {
    return sets_[static_cast<std::size_t>(split_index(split))];
  }

  Batch batch(Split split, const std::vector<std::int64_t>& rows) const override {
    return batch_of(split_set(split), rows);
  }

  // inputs: the problem without its last character, padded to the set's width; targets: the next
  // character where it belongs to the answer (or its closing newline), kIgnoreTarget elsewhere.
  Batch batch_of(const ProblemSet& set, const std::vector<std::int64_t>& rows) const {
    if (set.ids.size() != set.text.size())
      throw Error(std::string(kWho) + "batch before prepare()");
    const auto b = static_cast<std::int64_t>(rows.size());
    const std::int64_t t = set.width;
    at::Tensor inputs = at::full({b, t}, pad_, at::kLong);
    at::Tensor targets = at::full({b, t}, kIgnoreTarget, at::kLong);
    auto in = inputs.accessor<std::int64_t, 2>();
    auto out = targets.accessor<std::int64_t, 2>();
    for (std::int64_t r = 0; r < b; ++r) {
      const auto row = static_cast<std::size_t>(rows[static_cast<std::size_t>(r)]);
      const auto& ids = set.ids[row];
      const std::int64_t from = set.answer_from[row];
      for (std::int64_t k = 0; k + 1 < static_cast<std::int64_t>(ids.size()); ++k) {
        in[r][k] = ids[static_cast<std::size_t>(k)];
        if (k + 1 >= from) out[r][k] = ids[static_cast<std::size_t>(k + 1)];
      }
    }
    return Batch{inputs, targets, at::Tensor()};
  }

  ArithmeticOptions o_;
  std::vector<ProblemSet> sets_;  // train, val, test, then the groups
  std::int64_t length_ = 1;       // the longest set's width
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
  schema.add("held_out_digits", &ArithmeticOptions::held_out_digits,
             "longer operand lengths to test generalisation on, never trained on");
  schema
      .add("held_out_problems", &ArithmeticOptions::held_out_problems,
           "distinct problems in each held-out length")
      .min(1);
  registry.add<Dataset>("arithmetic", "a+b=c problems with the loss on the answer", schema,
                        [](const ArithmeticOptions& o, const DatasetContext& c) {
                          return std::make_shared<ArithmeticDataset>(o, c.seed);
                        });
}

}  // namespace
}  // namespace lmrun::datasets

LMRUN_PLUGIN("arithmetic", "0.1.0", lmrun::datasets::register_arithmetic)
