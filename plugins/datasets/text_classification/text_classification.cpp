// Dataset `text_classification`: a text and a label per row of a TSV or CSV file.
//
// - Splits: `train` (required), with `val` and `test` files, or with val_fraction / test_fraction
//   taken out of train by a stratified, seeded split (each class keeps its share in every split).
// - Rows: TSV splits each line on its last tab (a text may hold tabs; a label does not); CSV
//   follows RFC 4180 (quoted fields, "" for a quote). With a header (`header = "auto"`: when the
//   first row names the label column), the columns are found by `text_column` and `label_column`;
//   without one, the label is the last field and the text the rest. Only LF ends a line (a
//   U+0085 inside a sentence stays in it); a trailing CR is dropped; text and label are trimmed.
// - Labels: the distinct labels of the train split, in order (numerically when all are
//   integers), become class ids 0..C-1; a val or test label that train lacks is an error naming
//   the file and line.
// - Batches: token ids padded with the tokenizer's <pad> id to the batch's longest text (at most
//   max_len; longer texts are truncated), with a mask true at real tokens; targets (B).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "lmrun/dataset.h"
#include "lmrun/plugin.h"
#include "lmrun/schema.h"
#include "lmrun/util/files.h"
#include "lmrun/util/rows.h"

namespace lmrun::datasets {
namespace {

constexpr const char* kWho = "dataset 'text_classification': ";

struct Options {
  std::filesystem::path train;
  std::filesystem::path val;   // empty: val_fraction of train
  std::filesystem::path test;  // empty: test_fraction of train
  double val_fraction = 0.0;
  double test_fraction = 0.0;
  std::string format = "auto";  // auto (by extension), tsv, csv
  std::string header = "auto";  // auto, yes, no
  std::string text_column = "sentence";
  std::string label_column = "label";
  std::int64_t max_len = 256;
  std::int64_t folds = 0;  // >= 2: k-fold cross-validation, `fold` is the val split
  std::int64_t fold = 0;
};

struct Row {
  std::string text;
  std::string label;
  std::int64_t line = 0;
};

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// RFC 4180 fields of one CSV record starting at `pos`; advances `pos` past it and its newline
// (a quoted field may hold newlines). `line` counts the lines consumed.
std::vector<std::string> csv_record(const std::string& text, std::size_t& pos, std::int64_t& line,
                                    const std::string& file) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  const std::int64_t start_line = line;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (quoted) {
      if (c == '"' && pos + 1 < text.size() && text[pos + 1] == '"') {
        fields.back() += '"';
        ++pos;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c == '\n') {
      ++pos;
      ++line;
      return fields;
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  if (quoted) {
    throw Error(std::string(kWho) + file + ":" + std::to_string(start_line) +
                ": a quoted field is never closed");
  }
  ++line;
  return fields;
}

std::vector<std::vector<std::string>> read_records(const std::filesystem::path& path, bool csv,
                                                   std::vector<std::int64_t>& lines) {
  std::string text;
  try {
    text = read_file(path);  // a regular file only: never a FIFO
  } catch (const Error& error) {
    throw Error(std::string(kWho) + error.what(), error.hint());
  }
  std::vector<std::vector<std::string>> records;
  std::size_t pos = 0;
  std::int64_t line = 1;
  while (pos < text.size()) {
    const std::int64_t at = line;
    std::vector<std::string> fields;
    if (csv) {
      fields = csv_record(text, pos, line, path.string());
    } else {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string row = text.substr(pos, end - pos);
      if (!row.empty() && row.back() == '\r') row.pop_back();
      pos = end + 1;
      ++line;
      const std::size_t tab = row.rfind('\t');
      if (tab == std::string::npos) {
        fields = {row};
      } else {
        fields = {row.substr(0, tab), row.substr(tab + 1)};
      }
    }
    if (fields.size() == 1 && trim(fields[0]).empty()) continue;  // a blank line
    records.push_back(std::move(fields));
    lines.push_back(at);
  }
  return records;
}

std::vector<Row> read_rows(const std::filesystem::path& path, const Options& o) {
  const std::string problem = regular_file_problem(path);  // a FIFO would block the read
  if (!problem.empty()) {
    throw Error(std::string(kWho) + path.string() + " " + problem,
                "data paths resolve against the working directory");
  }
  const bool csv = o.format == "csv" || (o.format == "auto" && path.extension() == ".csv");
  std::vector<std::int64_t> lines;
  auto records = read_records(path, csv, lines);
  if (records.empty()) throw Error(std::string(kWho) + path.string() + " has no rows");
  // Columns: by the header's names, or the last field is the label and the rest the text.
  std::int64_t text_at = -1, label_at = -1;
  std::size_t first = 0;
  const auto& head = records[0];
  const bool has_header =
      o.header == "yes" ||
      (o.header == "auto" && std::find_if(head.begin(), head.end(), [&](const std::string& f) {
                               return trim(f) == o.label_column;
                             }) != head.end());
  if (has_header) {
    for (std::size_t i = 0; i < head.size(); ++i) {
      if (trim(head[i]) == o.text_column) text_at = static_cast<std::int64_t>(i);
      if (trim(head[i]) == o.label_column) label_at = static_cast<std::int64_t>(i);
    }
    if (label_at < 0 || (text_at < 0 && head.size() != 2)) {
      std::string names;
      for (const auto& f : head) names += (names.empty() ? "" : ", ") + trim(f);
      throw Error(std::string(kWho) + path.string() + ":1: the header (" + names +
                      ") has no column '" + (label_at < 0 ? o.label_column : o.text_column) + "'",
                  "set text_column and label_column to the header's names, or header = \"no\"");
    }
    if (text_at < 0) text_at = label_at == 0 ? 1 : 0;
    first = 1;
  }
  std::vector<Row> rows;
  for (std::size_t r = first; r < records.size(); ++r) {
    const auto& fields = records[r];
    Row row;
    row.line = lines[r];
    if (has_header) {
      const auto need = static_cast<std::size_t>(std::max(text_at, label_at)) + 1;
      if (fields.size() < need) {
        throw Error(std::string(kWho) + path.string() + ":" + std::to_string(row.line) + ": " +
                    std::to_string(fields.size()) + " fields, the header has " +
                    std::to_string(head.size()));
      }
      row.text = trim(fields[static_cast<std::size_t>(text_at)]);
      row.label = trim(fields[static_cast<std::size_t>(label_at)]);
    } else {
      if (fields.size() < 2) {
        throw Error(std::string(kWho) + path.string() + ":" + std::to_string(row.line) +
                        ": no label (expected text" + (csv ? "," : "<tab>") + "label)",
                    "check the file's format (format = \"tsv\" or \"csv\")");
      }
      row.label = trim(fields.back());
      std::string text;
      for (std::size_t i = 0; i + 1 < fields.size(); ++i) text += (i ? "," : "") + fields[i];
      row.text = trim(text);
    }
    if (row.label.empty()) {
      throw Error(std::string(kWho) + path.string() + ":" + std::to_string(row.line) +
                  ": the label is empty");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

bool is_integer(const std::string& s) {
  if (s.empty()) return false;
  std::size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

class TextClassification final : public RowDataset {
 public:
  TextClassification(Options options, std::uint64_t seed) : o_(std::move(options)) {
    if (o_.val_fraction < 0 || o_.test_fraction < 0 || o_.val_fraction + o_.test_fraction >= 1) {
      throw Error(std::string(kWho) + "val_fraction + test_fraction must be in [0, 1)");
    }
    if (!o_.val.empty() && o_.val_fraction > 0) {
      throw Error(std::string(kWho) + "both a val file and val_fraction",
                  "give one: val = \"dev.tsv\", or val_fraction = 0.1 of train");
    }
    if (!o_.test.empty() && o_.test_fraction > 0) {
      throw Error(std::string(kWho) + "both a test file and test_fraction",
                  "give one: test = \"test.tsv\", or test_fraction = 0.1 of train");
    }
    if (o_.folds == 1) {
      throw Error(std::string(kWho) + "folds = 1 holds nothing out",
                  "set folds = 0 (no cross-validation) or folds >= 2");
    }
    if (o_.folds >= 2) {
      if (o_.fold >= o_.folds) {
        throw Error(std::string(kWho) + "fold = " + std::to_string(o_.fold) +
                    " is not one of the " + std::to_string(o_.folds) + " folds (0.." +
                    std::to_string(o_.folds - 1) + ")");
      }
      if (!o_.val.empty() || o_.val_fraction > 0) {
        throw Error(std::string(kWho) + "with folds = " + std::to_string(o_.folds) +
                        ", each fold is the val split in turn: a val file or val_fraction "
                        "has no place",
                    "remove val / val_fraction, or set folds = 0");
      }
    }
    std::vector<Row> train = read_rows(o_.train, o_);
    make_labels(train);
    split(std::move(train), seed);
    if (!o_.val.empty()) rows_[1] = checked(read_rows(o_.val, o_), o_.val);
    if (!o_.test.empty()) rows_[2] = checked(read_rows(o_.test, o_), o_.test);
  }

  Task task() const override { return Task::kClassification; }

  std::string training_text() const override {
    std::string text;
    for (const auto& row : rows_[0]) text += row.text + "\n";
    return text;
  }

  void prepare(const Tokenizer& tokenizer) override {
    pad_ = std::max<std::int64_t>(tokenizer.special_id("<pad>"), 0);
    const std::int64_t unk = tokenizer.special_id("<unk>");
    for (int s = 0; s < 3; ++s) {
      ids_[s].clear();
      for (const auto& row : rows_[s]) {
        std::vector<std::int64_t> ids = tokenizer.encode(row.text);
        if (static_cast<std::int64_t>(ids.size()) > o_.max_len)
          ids.resize(static_cast<std::size_t>(o_.max_len));
        // A text with no tokens still needs one position for the model to read.
        if (ids.empty()) ids.push_back(unk >= 0 ? unk : pad_);
        ids_[s].push_back(std::move(ids));
      }
    }
  }

  bool has_split(Split split) const override { return !rows_[split_index(split)].empty(); }
  std::int64_t num_examples(Split split) const override {
    return static_cast<std::int64_t>(rows_[split_index(split)].size());
  }
  // The longest input a model must read: max_len, not the longest training text, so that a
  // longer text at prediction time is cut where the dataset would cut it.
  std::int64_t sequence_length() const override { return o_.max_len; }
  std::int64_t num_classes() const override { return static_cast<std::int64_t>(names_.size()); }
  std::vector<std::string> class_names() const override { return names_; }

 private:
  std::string who() const override { return kWho; }

  void make_labels(const std::vector<Row>& train) {
    std::set<std::string> distinct;
    for (const auto& row : train) distinct.insert(row.label);
    names_.assign(distinct.begin(), distinct.end());
    if (std::all_of(names_.begin(), names_.end(), is_integer)) {
      std::sort(names_.begin(), names_.end(), [](const std::string& a, const std::string& b) {
        return std::stoll(a) < std::stoll(b);
      });
    }
    if (names_.size() < 2) {
      throw Error(std::string(kWho) + o_.train.string() + " has " + std::to_string(names_.size()) +
                  " distinct label(s); a classifier needs two");
    }
    for (std::size_t i = 0; i < names_.size(); ++i)
      ids_of_[names_[i]] = static_cast<std::int64_t>(i);
  }

  std::vector<Row> checked(std::vector<Row> rows, const std::filesystem::path& file) const {
    for (const auto& row : rows) {
      if (!ids_of_.count(row.label)) {
        throw Error(std::string(kWho) + file.string() + ":" + std::to_string(row.line) +
                        ": label '" + row.label + "' does not occur in the train split",
                    "the classes come from train: check the file, or the label column");
      }
    }
    return rows;
  }

  // The stratified split: each class's rows shuffled with the seed, its first share to test,
  // the next to val, the rest to train, so every split keeps the class proportions. With folds,
  // the rows after test are dealt to the K folds in turn, continuing from class to class (fold
  // sizes differ by at most one, and so do a class's counts in any two folds); fold `fold` is
  // val. The deal depends on the seed alone, so the K runs of one experiment see disjoint vals.
  void split(std::vector<Row> train, std::uint64_t seed) {
    std::map<std::string, std::vector<Row>> by_class;
    for (auto& row : train) by_class[row.label].push_back(std::move(row));
    std::mt19937_64 rng(seed);
    for (auto& [label, rows] : by_class) {
      for (std::size_t i = rows.size(); i > 1; --i) {  // Fisher-Yates, portable (no std::shuffle)
        const std::size_t j = static_cast<std::size_t>(rng() % i);
        std::swap(rows[i - 1], rows[j]);
      }
      const auto n = static_cast<double>(rows.size());
      const auto tests = static_cast<std::size_t>(std::llround(n * o_.test_fraction));
      const auto vals = static_cast<std::size_t>(std::llround(n * o_.val_fraction));
      for (std::size_t i = 0; i < rows.size(); ++i) {
        int s = i < tests ? 2 : i < tests + vals ? 1 : 0;
        if (o_.folds >= 2 && i >= tests) {
          s = static_cast<std::int64_t>(dealt_++ % static_cast<std::uint64_t>(o_.folds)) == o_.fold
                  ? 1
                  : 0;
        }
        rows_[s].push_back(std::move(rows[i]));
      }
    }
    if (o_.folds >= 2 && dealt_ < static_cast<std::uint64_t>(o_.folds)) {
      throw Error(std::string(kWho) + "folds = " + std::to_string(o_.folds) + " needs at least " +
                      std::to_string(o_.folds) + " rows outside the test split, and " +
                      o_.train.string() + " leaves " + std::to_string(dealt_),
                  "lower folds, or add rows to the file");
    }
    // Back to file order within each split, so the result does not depend on the class map.
    for (auto& rows : rows_) {
      std::stable_sort(rows.begin(), rows.end(),
                       [](const Row& a, const Row& b) { return a.line < b.line; });
    }
  }

  Batch batch(Split split, const std::vector<std::int64_t>& picks) const override {
    const auto& ids = ids_[split_index(split)];
    const auto& rows = rows_[split_index(split)];
    std::int64_t width = 1;
    for (std::int64_t i : picks) {
      width = std::max<std::int64_t>(
          width, static_cast<std::int64_t>(ids[static_cast<std::size_t>(i)].size()));
    }
    const auto b = static_cast<std::int64_t>(picks.size());
    at::Tensor inputs = at::full({b, width}, pad_, at::kLong);
    at::Tensor mask = at::zeros({b, width}, at::kBool);
    at::Tensor targets = at::empty({b}, at::kLong);
    auto in = inputs.accessor<std::int64_t, 2>();
    auto m = mask.accessor<bool, 2>();
    auto t = targets.accessor<std::int64_t, 1>();
    for (std::int64_t r = 0; r < b; ++r) {
      const auto& row_ids = ids[static_cast<std::size_t>(picks[static_cast<std::size_t>(r)])];
      for (std::size_t k = 0; k < row_ids.size(); ++k) {
        in[r][static_cast<std::int64_t>(k)] = row_ids[k];
        m[r][static_cast<std::int64_t>(k)] = true;
      }
      t[r] = ids_of_.at(rows[static_cast<std::size_t>(picks[static_cast<std::size_t>(r)])].label);
    }
    return Batch{inputs, targets, mask};
  }

  Options o_;
  std::vector<Row> rows_[3];  // train, val, test
  std::vector<std::vector<std::int64_t>> ids_[3];
  std::vector<std::string> names_;              // class id -> label
  std::map<std::string, std::int64_t> ids_of_;  // label -> class id
  std::int64_t pad_ = 0;
  std::uint64_t dealt_ = 0;  // rows dealt to folds so far
};

void register_dataset(Registry& registry) {
  Schema<Options> schema;
  schema.add("train", &Options::train, "TSV or CSV file of the training split")
      .required()
      .input_file();
  schema.add("val", &Options::val, "file of the validation split (or use val_fraction)")
      .input_file();
  schema.add("test", &Options::test, "file of the test split (or use test_fraction)").input_file();
  schema
      .add("val_fraction", &Options::val_fraction,
           "share of train held out for validation, stratified by label")
      .min(0);
  schema
      .add("test_fraction", &Options::test_fraction,
           "share of train held out for test, stratified by label")
      .min(0);
  schema.add("format", &Options::format, "auto: .csv is CSV, anything else TSV")
      .choices({"auto", "tsv", "csv"});
  schema.add("header", &Options::header, "auto: a first row naming label_column is a header")
      .choices({"auto", "yes", "no"});
  schema.add("text_column", &Options::text_column, "the text's column name (with a header)");
  schema.add("label_column", &Options::label_column, "the label's column name (with a header)");
  schema.add("max_len", &Options::max_len, "tokens kept per text (longer ones are truncated)")
      .min(1);
  schema
      .add("folds", &Options::folds,
           "k-fold cross-validation: `lmrun FILE.toml` trains once per fold, each holding one "
           "fold out as val, and reports every metric's mean and std; 0: off")
      .min(0)
      .role(ParamRole::kFolds);
  schema.add("fold", &Options::fold, "the fold held out as val in this run (0..folds-1)")
      .min(0)
      .role(ParamRole::kFold);
  registry.add<Dataset>("text_classification",
                        "labelled texts from TSV/CSV files, padded batches with a mask", schema,
                        [](const Options& options, const DatasetContext& context) {
                          return std::make_shared<TextClassification>(options, context.seed);
                        });
}

}  // namespace
}  // namespace lmrun::datasets

LMRUN_PLUGIN("text_classification", "0.1.0", lmrun::datasets::register_dataset)
