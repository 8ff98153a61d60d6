// The `.kiln` grammar in Boost.Spirit X3. Each rule carries its EBNF production (the same
// as docs/language.md) as a comment. Rules build the AST through semantic actions that
// append to the file's expression arena, so attributes stay small and copyable and every
// node gets the span of the text it matched. Newlines are ordinary white space: every
// statement starts with a keyword or a name, and no expression can be followed by one.
#include <algorithm>
#include <boost/spirit/home/x3.hpp>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "compiler/syntax/grammar_internal.h"
#include "compiler/syntax/parser.h"

namespace kiln {
namespace syntax_detail {
namespace {

namespace x3 = boost::spirit::x3;
namespace fusion = boost::fusion;

struct state_tag;

template <typename Ctx>
ParseState& state(const Ctx& ctx) {
  return x3::get<state_tag>(ctx).get();
}

// located[p]: records where p's match begins, so p's semantic action can know its span.
// (In Boost 1.74, x3::_where in an action is the text *after* the match, not the match.)
template <typename Subject>
struct LocatedDirective : x3::unary_parser<Subject, LocatedDirective<Subject>> {
  using base_type = x3::unary_parser<Subject, LocatedDirective<Subject>>;
  static bool const is_pass_through_unary = true;
  static bool const handles_container = Subject::handles_container;
  constexpr LocatedDirective(const Subject& subject) : base_type(subject) {}

  template <typename Iterator, typename Context, typename RContext, typename Attribute>
  bool parse(Iterator& first, const Iterator& last, const Context& ctx, RContext& rctx, Attribute& attr) const {
    x3::skip_over(first, last, ctx);
    auto& starts = x3::get<struct state_tag>(ctx).get().starts;
    starts.push_back(first);
    struct Pop {
      std::vector<Iter>& s;
      ~Pop() { s.pop_back(); }
    } pop{starts};
    return this->subject.parse(first, last, ctx, rctx, attr);
  }
};

struct LocatedGen {
  template <typename Subject>
  constexpr LocatedDirective<typename x3::extension::as_parser<Subject>::value_type> operator[](
      const Subject& subject) const {
    return {x3::as_parser(subject)};
  }
};
constexpr LocatedGen located{};

// The span of what the rule whose action is running matched.
template <typename Ctx>
Span where(const Ctx& ctx) {
  ParseState& st = state(ctx);
  return st.span(st.starts.back(), x3::_where(ctx).begin());
}

// A name with its span.
struct NameTok {
  std::string text;
  Span span;
};

// ---------------------------------------------------------------------------------------
// Tokens

// skipper = white space | "#" , { any character but newline } ;
// A newline is '\n' (a CRLF file's '\r' stays in the comment, which the formatter and
// scan_comments trim). x3::eol would also end a comment at a lone '\r', where nothing else
// ends a line: the text after it would be code here and comment to the formatter.
const auto skipper = x3::ascii::space | x3::lexeme['#' >> *(x3::char_ - '\n')];

const auto ident_char = x3::ascii::alnum | x3::char_('_');

// keyword = the word, not followed by a name character
auto kw(const char* word) {
  return x3::lexeme[x3::lit(word) >> !ident_char];
}

const auto reserved = kw("import") | kw("layer") | kw("model") | kw("features") | kw("train") | kw("promote") |
                      kw("input") | kw("output") | kw("param") | kw("state") | kw("update") | kw("return") |
                      kw("true") | kw("false");

// name = ( letter | "_" ) , { letter | digit | "_" } - keyword ;
const x3::rule<class name_tag, NameTok> name = "a name";
const auto name_def =
    located[(x3::raw[x3::lexeme[(x3::ascii::alpha | x3::char_('_')) >> *ident_char]] - reserved)[([](auto& ctx) {
      auto r = x3::_attr(ctx);
      x3::_val(ctx) = NameTok{std::string(r.begin(), r.end()), where(ctx)};
    })]];

// number = digits , [ "." , { digit } ] , [ ( "e" | "E" ) , [ "+" | "-" ] , digits ] ;
const x3::rule<class number_tag, ast::ExprId> number = "a number";
const auto number_def =
    located[x3::raw[x3::lexeme[+x3::ascii::digit >> -('.' >> *x3::ascii::digit) >>
                               -(x3::char_("eE") >> -x3::char_("+-") >> +x3::ascii::digit)]][([](auto& ctx) {
      auto r = x3::_attr(ctx);
      std::string text(r.begin(), r.end());
      ast::Expr e;
      e.kind = ast::ExprKind::kNumber;
      e.span = where(ctx);
      e.text = text;
      // `1e-`, `2x`, `1.5.2`: a number run straight into letters or dots is malformed.
      Iter after = x3::_where(ctx).begin();
      Iter stop = after;
      while (stop < state(ctx).end &&
             (std::isalnum(static_cast<unsigned char>(*stop)) || *stop == '_' || *stop == '.' ||
              ((*stop == '+' || *stop == '-') && (stop[-1] == 'e' || stop[-1] == 'E')))) {
        ++stop;
      }
      if (stop != after) {
        std::string all(r.begin(), stop);
        if (stop < state(ctx).end && static_cast<unsigned char>(*stop) >= 0x80) {
          std::uint32_t cp = 0;
          std::size_t n = utf8_decode(stop, state(ctx).end, cp);
          throw SyntaxError{stop, "unexpected character " + describe_at(stop, state(ctx).end),
                            lookalike_hint(stop, state(ctx).end), stop + n};
        }
        throw SyntaxError{r.begin(), "malformed number '" + all + "'",
                          all.find_first_of("eE") != std::string::npos ? "an exponent needs digits: 1e-3"
                                                                       : "numbers are written 12, 0.5 or 1e-3",
                          stop};
      }
      e.is_integer = text.find_first_of(".eE") == std::string::npos;
      if (e.is_integer) {
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), e.integer);
        (void)p;
        if (ec != std::errc()) {
          throw SyntaxError{r.begin(), "integer literal '" + text + "' is out of range",
                            "integers must fit in 64 bits; write it as a float (e.g. 1e30)"};
        }
        e.number = static_cast<double>(e.integer);
      } else {
        e.number = std::strtod(text.c_str(), nullptr);
      }
      x3::_val(ctx) = state(ctx).add(std::move(e));
    })]];

// string = '"' , { character - '"' - newline | "\" , escape } , '"' ;
const x3::rule<class string_body_tag, std::string> string_body = "a string";
const auto escape = x3::lit('\\') > (x3::lit('"') >> x3::attr('"') | x3::lit('\\') >> x3::attr('\\') |
                                     x3::lit('n') >> x3::attr('\n') | x3::lit('t') >> x3::attr('\t'));
const x3::rule<class string_end_tag> string_end = "'\"' closing the string";
const auto string_end_def = located[x3::lit('"')];
const auto string_body_def = located[x3::lexeme['"' > *(escape | (x3::char_ - '"' - '\\' - x3::eol)) > string_end]];

const x3::rule<class string_lit_tag, ast::ExprId> string_lit = "a string";
const auto string_lit_def = located[string_body[([](auto& ctx) {
  ast::Expr e;
  e.kind = ast::ExprKind::kString;
  e.span = where(ctx);
  e.text = x3::_attr(ctx);
  x3::_val(ctx) = state(ctx).add(std::move(e));
})]];

// bool = "true" | "false" ;
const x3::rule<class bool_lit_tag, ast::ExprId> bool_lit = "true or false";
const x3::rule<class bool_word_tag, bool> bool_word = "true or false";
const auto bool_word_def = located[kw("true") >> x3::attr(true) | kw("false") >> x3::attr(false)];
const auto bool_lit_def = located[bool_word[([](auto& ctx) {
  ast::Expr e;
  e.kind = ast::ExprKind::kBool;
  e.span = where(ctx);
  e.boolean = x3::_attr(ctx);
  e.text = e.boolean ? "true" : "false";
  x3::_val(ctx) = state(ctx).add(std::move(e));
})]];

// ---------------------------------------------------------------------------------------
// Expressions

const x3::rule<class expr_tag, ast::ExprId> expr = "an expression";
const x3::rule<class primary_tag, ast::ExprId> primary = "an expression";
const x3::rule<class postfix_tag, ast::ExprId> postfix = "an expression";
const x3::rule<class unary_tag, ast::ExprId> unary = "an expression";
const x3::rule<class multiplicative_tag, ast::ExprId> multiplicative = "an expression";
const x3::rule<class additive_tag, ast::ExprId> additive = "an expression";
const x3::rule<class comparison_tag, ast::ExprId> comparison = "an expression";
const x3::rule<class call_arg_tag, ast::CallArg> call_arg = "an argument";
const x3::rule<class call_args_tag, std::vector<ast::CallArg>> call_args = "arguments";
const x3::rule<class close_paren_tag> close_paren = "')'";
const x3::rule<class close_bracket_tag> close_bracket = "']'";

const auto close_paren_def = located[x3::lit(')')];
const auto close_bracket_def = located[x3::lit(']')];

const auto set_val = [](auto& ctx) { x3::_val(ctx) = x3::_attr(ctx); };

// list = "[" , [ expr , { "," , expr } , [ "," ] ] , "]" ;
const x3::rule<class list_tag, ast::ExprId> list = "a list";
const auto list_def = located[('[' > -(expr % ',') > -x3::lit(',') > close_bracket)[([](auto& ctx) {
  ast::Expr e;
  e.kind = ast::ExprKind::kList;
  e.span = where(ctx);
  if (auto& items = x3::_attr(ctx)) {
    for (ast::ExprId id : *items) e.args.push_back({"", {}, id});
  }
  x3::_val(ctx) = state(ctx).add(std::move(e));
})]];

// name_expr = name ;
const x3::rule<class name_expr_tag, ast::ExprId> name_expr = "a name";
const auto name_expr_def = located[name[([](auto& ctx) {
  ast::Expr e;
  e.kind = ast::ExprKind::kName;
  e.span = x3::_attr(ctx).span;
  e.text = x3::_attr(ctx).text;
  x3::_val(ctx) = state(ctx).add(std::move(e));
})]];

// paren = "(" , expr , ")" ;
const x3::rule<class paren_tag, ast::ExprId> paren = "a parenthesised expression";
const auto paren_def = located['(' > expr > close_paren];

// primary = number | string | bool | list | name | "(" , expr , ")" ;
const auto primary_def = located[number | string_lit | bool_lit | list | name_expr | paren];

// call_arg = [ name , ":" ] , expr ;
const auto call_arg_def =
    located[(name >> ':' >> expr)[([](auto& ctx) {
              auto& a = x3::_attr(ctx);
              x3::_val(ctx) = ast::CallArg{fusion::at_c<0>(a).text, fusion::at_c<0>(a).span, fusion::at_c<1>(a)};
            })] |
            expr[([](auto& ctx) {
              x3::_val(ctx) = ast::CallArg{"", {}, x3::_attr(ctx)};
            })]];

// call_args = "(" , [ call_arg , { "," , call_arg } , [ "," ] ] , ")" ;
const auto call_args_def = located[('(' > -(call_arg % ',') > -x3::lit(',') > close_paren)[([](auto& ctx) {
  if (auto& args = x3::_attr(ctx)) x3::_val(ctx) = *args;
})]];

// postfix = primary , { call_args | "." , name } ;
const auto postfix_def = located[primary[set_val] >> *(call_args[([](auto& ctx) {
                                                         ParseState& st = state(ctx);
                                                         ast::Expr e;
                                                         e.kind = ast::ExprKind::kCall;
                                                         e.lhs = x3::_val(ctx);
                                                         e.span = st.join(st.expr(e.lhs).span, where(ctx));
                                                         e.args = x3::_attr(ctx);
                                                         x3::_val(ctx) = st.add(std::move(e));
                                                       })] |
                                                       ('.' > name)[([](auto& ctx) {
                                                         ParseState& st = state(ctx);
                                                         ast::Expr e;
                                                         e.kind = ast::ExprKind::kMember;
                                                         e.lhs = x3::_val(ctx);
                                                         e.span = st.join(st.expr(e.lhs).span, where(ctx));
                                                         e.text = x3::_attr(ctx).text;
                                                         x3::_val(ctx) = st.add(std::move(e));
                                                       })])];

// unary = { "-" } , postfix ;      (a loop, not recursion: deep chains cannot overflow)
const x3::rule<class minus_tag, Span> minus_tok = "'-'";
const auto minus_tok_def =
    located[x3::raw[x3::lit('-') >> !x3::lit('>')][([](auto& ctx) { x3::_val(ctx) = where(ctx); })]];
const auto unary_def = located[(*minus_tok >> postfix)[([](auto& ctx) {
  ParseState& st = state(ctx);
  auto& minuses = fusion::at_c<0>(x3::_attr(ctx));
  ast::ExprId value = fusion::at_c<1>(x3::_attr(ctx));
  for (auto it = minuses.rbegin(); it != minuses.rend(); ++it) {
    ast::Expr e;
    e.kind = ast::ExprKind::kUnary;
    e.text = "-";
    e.lhs = value;
    e.span = st.join(*it, st.expr(value).span);
    value = st.add(std::move(e));
  }
  x3::_val(ctx) = value;
})]];

auto make_binary = [](auto& ctx) {
  ParseState& st = state(ctx);
  auto& a = x3::_attr(ctx);
  ast::Expr e;
  e.kind = ast::ExprKind::kBinary;
  e.text = fusion::at_c<0>(a);
  e.lhs = x3::_val(ctx);
  e.rhs = fusion::at_c<1>(a);
  e.span = st.join(st.expr(e.lhs).span, st.expr(e.rhs).span);
  x3::_val(ctx) = st.add(std::move(e));
};

const auto as_string = [](auto p) { return x3::rule<class op_tag, std::string>{"an operator"} = x3::raw[p]; };

// multiplicative = unary , { ( "*" | "/" | "@" ) , unary } ;
const auto multiplicative_def = located[unary[set_val] >> *((as_string(x3::char_("*/@")) > unary)[make_binary])];

// additive = multiplicative , { ( "+" | "-" ) , multiplicative } ;
const auto additive_def =
    located[multiplicative[set_val] >>
            *((as_string(x3::char_('+') | (x3::char_('-') >> !x3::lit('>'))) > multiplicative)[make_binary])];

// comparison = additive , [ ( "<=" | ">=" | "==" | "!=" | "<" | ">" ) , additive ] ;
const auto compare_op = as_string(x3::string("<=") | x3::string(">=") | x3::string("==") | x3::string("!=") |
                                  x3::string("<") | x3::string(">"));
const auto comparison_def =
    located[additive[set_val] >> -((compare_op > additive)[make_binary]) >> -x3::raw[compare_op][([](auto& ctx) {
              throw SyntaxError{x3::_attr(ctx).begin(), "comparisons do not chain",
                                "write 'a < b' once; combine conditions in separate gates"};
            })]];

// expr = comparison ;
const auto expr_def = located[comparison];

BOOST_SPIRIT_DEFINE(name, number, string_body, string_end, string_lit, bool_word, bool_lit, minus_tok, expr, primary,
                    postfix, unary, multiplicative, additive, comparison, call_arg, call_args, close_paren,
                    close_bracket, list, name_expr, paren)

// ---------------------------------------------------------------------------------------
// Types

// dim = "..." | integer | name ;
const x3::rule<class dim_tag, ast::DimPattern> dim = "a dimension (a size, a name, or '...')";
const auto dim_def = located[x3::raw[x3::lexeme[+x3::ascii::digit >> '.' >> *x3::ascii::digit]][([](auto& ctx) {
                               auto r = x3::_attr(ctx);
                               throw SyntaxError{r.begin(),
                                                 "a dimension must be a whole number, a name or '...', not " +
                                                     std::string(r.begin(), r.end()),
                                                 "", r.end()};
                             })] |
                             x3::raw[x3::lit("...")][([](auto& ctx) {
                               ast::DimPattern d;
                               d.kind = ast::DimPattern::Kind::kEllipsis;
                               d.span = where(ctx);
                               x3::_val(ctx) = d;
                             })] |
                             x3::raw[x3::lexeme[+x3::ascii::digit >> !ident_char]][([](auto& ctx) {
                               ast::DimPattern d;
                               d.kind = ast::DimPattern::Kind::kInt;
                               d.span = where(ctx);
                               auto r = x3::_attr(ctx);
                               auto [p, ec] = std::from_chars(r.begin(), r.end(), d.value);
                               (void)p;
                               if (ec != std::errc()) throw SyntaxError{r.begin(), "dimension is out of range", ""};
                               x3::_val(ctx) = d;
                             })] |
                             name[([](auto& ctx) {
                               ast::DimPattern d;
                               d.kind = ast::DimPattern::Kind::kSymbol;
                               d.name = x3::_attr(ctx).text;
                               d.span = x3::_attr(ctx).span;
                               x3::_val(ctx) = d;
                             })]];

const x3::rule<class dtype_tag, std::string> dtype_word = "an element type";
const auto dtype_word_def = located[x3::lexeme[(x3::string("f32") | x3::string("f64") | x3::string("i32") |
                                                x3::string("i64") | x3::string("bool")) >>
                                               !ident_char]];

// type = dtype , "[" , [ dim , { "," , dim } ] , "]" | name , [ "." , name ] ;
const x3::rule<class type_tag, ast::TypeExpr> type_expr =
    "a type (a tensor type such as f32[batch, 10], or int, float, bool, string, shape, or a "
    "feature set)";
const auto type_expr_def = located[((dtype_word >> '[') > -(dim % ',') > close_bracket)[([](auto& ctx) {
                                     ast::TypeExpr t;
                                     auto& a = x3::_attr(ctx);
                                     t.is_tensor = true;
                                     t.span = where(ctx);
                                     t.dtype = fusion::at_c<0>(a);
                                     if (fusion::at_c<1>(a)) t.dims = *fusion::at_c<1>(a);
                                     x3::_val(ctx) = t;
                                   })] |
                                   x3::raw[name >> &x3::lit('[')][([](auto& ctx) {
                                     auto r = x3::_attr(ctx);
                                     std::string word(r.begin(), r.end());
                                     std::string near = closest_match(word, {"f32", "f64", "i32", "i64", "bool"});
                                     throw SyntaxError{r.begin(), "unknown element type '" + word + "'",
                                                       near.empty() ? "element types are f32, f64, i32, i64 and bool"
                                                                    : "did you mean '" + near + "'?",
                                                       r.end()};
                                   })] |
                                   (name >> -('.' > name))[([](auto& ctx) {
                                     ast::TypeExpr t;
                                     auto& a = x3::_attr(ctx);
                                     t.name = fusion::at_c<0>(a).text;
                                     t.span = where(ctx);
                                     if (fusion::at_c<1>(a)) t.member = fusion::at_c<1>(a)->text;
                                     x3::_val(ctx) = t;
                                   })]];

BOOST_SPIRIT_DEFINE(dim, dtype_word, type_expr)

// ---------------------------------------------------------------------------------------
// Statements

struct BlockTok {
  std::vector<ast::Stmt> stmts;
  Span end;
};

template <ast::StmtKind kind>
auto make_stmt() {
  return [](auto& ctx) {
    ast::Stmt st;
    st.kind = kind;
    st.span = where(ctx);
    auto& a = x3::_attr(ctx);
    using A = std::decay_t<decltype(a)>;
    if constexpr (kind == ast::StmtKind::kInput) {
      st.names = {fusion::at_c<0>(a).text};
      st.name_spans = {fusion::at_c<0>(a).span};
      st.type = fusion::at_c<1>(a);
    } else if constexpr (kind == ast::StmtKind::kParam || kind == ast::StmtKind::kState) {
      st.names = {fusion::at_c<0>(a).text};
      st.name_spans = {fusion::at_c<0>(a).span};
      st.type = fusion::at_c<1>(a);
      st.values = {fusion::at_c<2>(a)};
    } else if constexpr (kind == ast::StmtKind::kOutput || kind == ast::StmtKind::kUpdate) {
      st.names = {fusion::at_c<0>(a).text};
      st.name_spans = {fusion::at_c<0>(a).span};
      st.values = {fusion::at_c<1>(a)};
    } else if constexpr (kind == ast::StmtKind::kReturn) {
      static_assert(std::is_same_v<A, std::vector<ast::ExprId>>);
      st.values = a;
    } else {
      for (const NameTok& n : fusion::at_c<0>(a)) {
        st.names.push_back(n.text);
        st.name_spans.push_back(n.span);
      }
      st.values = {fusion::at_c<1>(a)};
    }
    x3::_val(ctx) = std::move(st);
  };
}

const x3::rule<class equals_tag> equals = "'='";
const auto equals_def = located[x3::lit('=') >> !x3::lit('=')];
const x3::rule<class colon_tag> colon = "':'";
const auto colon_def = located[x3::lit(':')];

// input_decl = "input" , name , ":" , type ;
const x3::rule<class input_tag, ast::Stmt> input_decl = "an input declaration";
const auto input_decl_def = located[(kw("input") > name > colon > type_expr)[make_stmt<ast::StmtKind::kInput>()]];

// output_decl = "output" , name , "=" , expr ;
const x3::rule<class output_tag, ast::Stmt> output_decl = "an output declaration";
const auto output_decl_def = located[(kw("output") > name > equals > expr)[make_stmt<ast::StmtKind::kOutput>()]];

// param_decl = "param" , name , ":" , type , "=" , expr ;
const x3::rule<class param_tag, ast::Stmt> param_decl = "a param declaration";
const auto param_decl_def =
    located[(kw("param") > name > colon > type_expr > equals > expr)[make_stmt<ast::StmtKind::kParam>()]];

// state_decl = "state" , name , ":" , type , "=" , expr ;
const x3::rule<class state_decl_tag, ast::Stmt> state_decl = "a state declaration";
const auto state_decl_def =
    located[(kw("state") > name > colon > type_expr > equals > expr)[make_stmt<ast::StmtKind::kState>()]];

// update_stmt = "update" , name , "=" , expr ;
const x3::rule<class update_tag, ast::Stmt> update_stmt = "an update statement";
const auto update_stmt_def = located[(kw("update") > name > equals > expr)[make_stmt<ast::StmtKind::kUpdate>()]];

// return_stmt = "return" , expr , { "," , expr } ;
const x3::rule<class return_tag, ast::Stmt> return_stmt = "a return statement";
const auto return_stmt_def = located[(kw("return") > (expr % ','))[make_stmt<ast::StmtKind::kReturn>()]];

// binding = name , { "," , name } , "=" , expr ;
const x3::rule<class binding_tag, ast::Stmt> binding = "a binding";
const auto binding_def = located[((name % ',') > equals > expr)[make_stmt<ast::StmtKind::kBinding>()]];

// stmt = ( input_decl | output_decl | param_decl | state_decl | update_stmt | return_stmt
//        | binding ) , [ ";" ] ;
const x3::rule<class stmt_tag, ast::Stmt> stmt = "a statement";
const auto stmt_def =
    located[(input_decl | output_decl | param_decl | state_decl | update_stmt | return_stmt | binding) >>
            -x3::lit(';')];

// block = "{" , { stmt } , "}" ;
const x3::rule<class block_end_tag, Span> block_end = "a statement or '}'";
const auto block_end_def = located[x3::raw[x3::lit('}')][([](auto& ctx) { x3::_val(ctx) = where(ctx); })]];
const x3::rule<class block_tag, BlockTok> block = "a block";
const auto block_def = located[(x3::lit('{') > *stmt > block_end)[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  x3::_val(ctx) = BlockTok{fusion::at_c<0>(a), fusion::at_c<1>(a)};
})]];

BOOST_SPIRIT_DEFINE(equals, colon, input_decl, output_decl, param_decl, state_decl, update_stmt, return_stmt, binding,
                    stmt, block_end, block)

// ---------------------------------------------------------------------------------------
// Declarations

// import = "import" , ( dotted_name | string ) , [ "as" , name ] ;
// dotted_name = name , { "." , name } ;
const x3::rule<class import_target_tag, NameTok> import_target = "a module name or a quoted path";
const auto import_target_def =
    located[x3::raw[string_body][([](auto& ctx) {
              // Keep the quotes out of the target but the span over the whole literal.
              auto r = x3::_attr(ctx);
              std::string unquoted;
              ParseState& st = state(ctx);
              Span span = where(ctx);
              ast::File scratch;
              (void)scratch;
              std::string_view raw(r.begin(), static_cast<std::size_t>(r.end() - r.begin()));
              for (std::size_t i = 1; i + 1 < raw.size(); ++i) {
                if (raw[i] == '\\' && i + 2 < raw.size()) {
                  ++i;
                  unquoted.push_back(raw[i] == 'n' ? '\n' : raw[i] == 't' ? '\t' : raw[i]);
                } else {
                  unquoted.push_back(raw[i]);
                }
              }
              (void)st;
              x3::_val(ctx) = NameTok{"\"" + unquoted, span};  // leading quote marks a path
            })] |
            (name % '.')[([](auto& ctx) {
              // Joined from the name tokens: white space or comments between them are not part of it.
              const std::vector<NameTok>& parts = x3::_attr(ctx);
              std::string text;
              for (const NameTok& part : parts) text += (text.empty() ? "" : ".") + part.text;
              x3::_val(ctx) = NameTok{text, state(ctx).join(parts.front().span, parts.back().span)};
            })]];

const x3::rule<class import_decl_tag, ast::Import> import_decl = "an import";
const auto import_decl_def = located[(kw("import") > import_target > -(kw("as") > name))[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::Import im;
  im.span = where(ctx);
  const NameTok& target = fusion::at_c<0>(a);
  im.is_path = !target.text.empty() && target.text[0] == '"';
  im.target = im.is_path ? target.text.substr(1) : target.text;
  im.target_span = target.span;
  if (fusion::at_c<1>(a)) {
    im.alias = fusion::at_c<1>(a)->text;
    im.alias_span = fusion::at_c<1>(a)->span;
  }
  x3::_val(ctx) = im;
})]];

// arg = name , ":" , type , [ "=" , expr ] ;
const x3::rule<class layer_arg_tag, ast::LayerArg> layer_arg = "an argument declaration";
const auto layer_arg_def = located[(name > colon > type_expr > -(equals > expr))[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::LayerArg arg;
  arg.name = fusion::at_c<0>(a).text;
  arg.name_span = fusion::at_c<0>(a).span;
  arg.type = fusion::at_c<1>(a);
  if (fusion::at_c<2>(a)) arg.default_value = *fusion::at_c<2>(a);
  x3::_val(ctx) = arg;
})]];

// layer_decl = "layer" , name , "(" , [ arg , { "," , arg } ] , ")" , [ "->" , type ] , block ;
const x3::rule<class layer_decl_tag, ast::LayerDecl> layer_decl = "a layer";
const x3::rule<class open_paren_tag> open_paren = "'('";
const auto open_paren_def = located[x3::lit('(')];
const x3::rule<class open_brace_tag> open_brace = "'{'";
const auto open_brace_def = located[&x3::lit('{')];
const x3::rule<class layer_args_tag, std::vector<ast::LayerArg>> layer_args = "arguments";
const auto layer_args_def = located[(open_paren > -(layer_arg % ',') > -x3::lit(',') > close_paren)[([](auto& ctx) {
  if (auto& args = x3::_attr(ctx)) x3::_val(ctx) = *args;
})]];
const x3::rule<class layer_result_tag, ast::TypeExpr> layer_result = "a result type";
const auto layer_result_def = located[x3::lit("->") > type_expr];
const auto layer_decl_def =
    located[(kw("layer") > name > layer_args > -layer_result > open_brace > block)[([](auto& ctx) {
      auto& a = x3::_attr(ctx);
      ast::LayerDecl l;
      l.span = where(ctx);
      l.name = fusion::at_c<0>(a).text;
      l.name_span = fusion::at_c<0>(a).span;
      l.args = fusion::at_c<1>(a);
      if (fusion::at_c<2>(a)) l.result = *fusion::at_c<2>(a);
      l.body = fusion::at_c<3>(a).stmts;
      l.body_end = fusion::at_c<3>(a).end;
      x3::_val(ctx) = std::move(l);
    })]];

// model_decl = "model" , name , block ;
const x3::rule<class model_decl_tag, ast::ModelDecl> model_decl = "a model";
const auto model_decl_def = located[(kw("model") > name > open_brace > block)[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::ModelDecl m;
  m.span = where(ctx);
  m.name = fusion::at_c<0>(a).text;
  m.name_span = fusion::at_c<0>(a).span;
  m.body = fusion::at_c<1>(a).stmts;
  m.body_end = fusion::at_c<1>(a).end;
  x3::_val(ctx) = std::move(m);
})]];

// level = name | integer | string ;
const x3::rule<class level_tag, ast::Level> level = "a level (a name, an integer or a string)";
const auto level_def =
    located[string_body[([](auto& ctx) {
              x3::_val(ctx) = ast::Level{ast::Level::Kind::kString, x3::_attr(ctx), where(ctx)};
            })] |
            x3::raw[x3::lexeme[+x3::ascii::digit >> !ident_char]][([](auto& ctx) {
              auto r = x3::_attr(ctx);
              x3::_val(ctx) = ast::Level{ast::Level::Kind::kInt, std::string(r.begin(), r.end()), where(ctx)};
            })] |
            name[([](auto& ctx) {
              x3::_val(ctx) = ast::Level{ast::Level::Kind::kName, x3::_attr(ctx).text, x3::_attr(ctx).span};
            })]];

// transform = name , [ "(" , [ call_arg , { "," , call_arg } ] , ")" ] ;
const x3::rule<class transform_tag, ast::Transform> transform = "a transform";
const auto transform_def = located[(name >> -call_args)[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::Transform t;
  t.span = where(ctx);
  t.name = fusion::at_c<0>(a).text;
  t.has_parens = static_cast<bool>(fusion::at_c<1>(a));
  if (t.has_parens) t.args = *fusion::at_c<1>(a);
  x3::_val(ctx) = std::move(t);
})]];

const x3::rule<class column_levels_tag, std::vector<ast::Level>> column_levels = "levels";
const auto column_levels_def = located[('[' > (level % ',') > close_bracket)[set_val]];

struct ColumnHead {
  bool is_label = false;
  NameTok name;
};

// column = [ "label" ] , name , ":" , column_type , { "->" , transform } , [ ";" ] ;
// column_type = name , [ "[" , level , { "," , level } , "]" ] ;
const x3::rule<class column_head_tag, ColumnHead> column_head = "a column";
const auto column_head_def = located[(kw("label") >> name >> colon)[([](auto& ctx) {
                                       x3::_val(ctx) = ColumnHead{true, x3::_attr(ctx)};
                                     })] |
                                     (name > colon)[([](auto& ctx) {
                                       x3::_val(ctx) = ColumnHead{false, x3::_attr(ctx)};
                                     })]];
const x3::rule<class column_type_name_tag, NameTok> column_type_name = "a column type (number, category or pixels)";
const auto column_type_name_def = located[name];
const x3::rule<class column_tag, ast::Column> column = "a column";
const auto column_def = located[(column_head > column_type_name > -column_levels > *(x3::lit("->") > transform) >
                                 -x3::lit(';'))[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::Column c;
  c.span = where(ctx);
  c.is_label = fusion::at_c<0>(a).is_label;
  c.name = fusion::at_c<0>(a).name.text;
  c.name_span = fusion::at_c<0>(a).name.span;
  c.type_name = fusion::at_c<1>(a).text;
  c.type_span = fusion::at_c<1>(a).span;
  if (fusion::at_c<2>(a)) {
    c.has_levels = true;
    c.levels = *fusion::at_c<2>(a);
  }
  c.transforms = fusion::at_c<3>(a);
  x3::_val(ctx) = std::move(c);
})]];

const x3::rule<class column_end_tag, Span> column_end = "a column or '}'";
const auto column_end_def = located[x3::raw[x3::lit('}')][([](auto& ctx) { x3::_val(ctx) = where(ctx); })]];
const x3::rule<class field_end_tag, Span> field_end = "a field ('name = value') or '}'";
const auto field_end_def = located[x3::raw[x3::lit('}')][([](auto& ctx) { x3::_val(ctx) = where(ctx); })]];

// features_decl = "features" , name , "from" , postfix , "{" , { column } , "}" ;
const x3::rule<class features_decl_tag, ast::FeaturesDecl> features_decl = "a features block";
const x3::rule<class from_tag> from_kw = "'from'";
const auto from_kw_def = located[kw("from")];
const x3::rule<class source_tag, ast::ExprId> source = "a data source such as csv(\"file.csv\")";
const auto source_def = located[postfix];
const auto features_decl_def =
    located[(kw("features") > name > from_kw > source > x3::lit('{') > *column > column_end)[([](auto& ctx) {
      auto& a = x3::_attr(ctx);
      ast::FeaturesDecl f;
      f.span = where(ctx);
      f.name = fusion::at_c<0>(a).text;
      f.name_span = fusion::at_c<0>(a).span;
      f.source = fusion::at_c<1>(a);
      f.columns = fusion::at_c<2>(a);
      f.body_end = fusion::at_c<3>(a);
      x3::_val(ctx) = std::move(f);
    })]];

// field = name , "=" , expr , [ ";" ] ;
const x3::rule<class field_tag, ast::Field> field = "a field";
const auto field_def = located[(name > equals > expr > -x3::lit(';'))[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::Field f;
  f.span = where(ctx);
  f.name = fusion::at_c<0>(a).text;
  f.name_span = fusion::at_c<0>(a).span;
  f.value = fusion::at_c<1>(a);
  x3::_val(ctx) = std::move(f);
})]];

// gate = "gate" , expr , [ ";" ] ;
const x3::rule<class gate_tag, ast::Field> gate = "a gate";
const auto gate_def = located[(kw("gate") > expr > -x3::lit(';'))[([](auto& ctx) {
  ast::Field f;
  f.span = where(ctx);
  f.is_gate = true;
  f.value = x3::_attr(ctx);
  x3::_val(ctx) = std::move(f);
})]];

// train_decl = "train" , name , "{" , { field } , "}" ;
const x3::rule<class train_decl_tag, ast::TrainDecl> train_decl = "a train block";
const auto train_decl_def = located[(kw("train") > name > x3::lit('{') > *field > field_end)[([](auto& ctx) {
  auto& a = x3::_attr(ctx);
  ast::TrainDecl t;
  t.span = where(ctx);
  t.model = fusion::at_c<0>(a).text;
  t.model_span = fusion::at_c<0>(a).span;
  t.fields = fusion::at_c<1>(a);
  t.body_end = fusion::at_c<2>(a);
  x3::_val(ctx) = std::move(t);
})]];

// promote_decl = "promote" , name , "{" , { gate | field } , "}" ;
const x3::rule<class promote_item_tag, ast::Field> promote_item = "a gate or a field";
const auto promote_item_def = located[gate | field];
const x3::rule<class promote_decl_tag, ast::PromoteDecl> promote_decl = "a promote block";
const x3::rule<class promote_end_tag, Span> promote_end = "a gate, a field or '}'";
const auto promote_end_def = located[x3::raw[x3::lit('}')][([](auto& ctx) { x3::_val(ctx) = where(ctx); })]];
const auto promote_decl_def =
    located[(kw("promote") > name > x3::lit('{') > *promote_item > promote_end)[([](auto& ctx) {
      auto& a = x3::_attr(ctx);
      ast::PromoteDecl p;
      p.span = where(ctx);
      p.model = fusion::at_c<0>(a).text;
      p.model_span = fusion::at_c<0>(a).span;
      p.fields = fusion::at_c<1>(a);
      p.body_end = fusion::at_c<2>(a);
      x3::_val(ctx) = std::move(p);
    })]];

BOOST_SPIRIT_DEFINE(import_target, import_decl, layer_arg, layer_args, layer_result, layer_decl, open_paren, open_brace,
                    model_decl, level, column_levels, transform, column_head, column_type_name, column, column_end,
                    field_end, from_kw, source, features_decl, field, gate, train_decl, promote_item, promote_end,
                    promote_decl)

// top_decl = import | layer_decl | model_decl | features_decl | train_decl | promote_decl ;
const auto top_decl = x3::rule<class top_decl_tag, ast::Decl>{"a declaration"} =
    import_decl | layer_decl | model_decl | features_decl | train_decl | promote_decl;

// Throws the grammar's expectation failures as ExpectationError, so the recovery code
// (syntax_errors.cpp) needs no X3.
bool parse_one_declaration_impl(ParseState& st, Iter& p, ast::Decl& decl) {
  const auto grammar = x3::with<state_tag>(std::ref(st))[top_decl];
  try {
    return x3::phrase_parse(p, st.end, grammar, skipper, decl);
  } catch (const x3::expectation_failure<Iter>& e) {
    throw ExpectationError{e.where(), e.which()};
  }
}

}  // namespace

bool parse_one_declaration(ParseState& st, Iter& p, ast::Decl& decl) {
  return parse_one_declaration_impl(st, p, decl);
}

}  // namespace syntax_detail
}  // namespace kiln
