#pragma once
// The ids every Gloss vocabulary reserves (SentencePiece is trained with them; the model
// and the searches rely on them): padding, unknown, begin and end of sentence. Real subwords
// start at kFirstWordId.
namespace gloss::text {

constexpr int kPadId = 0;
constexpr int kUnkId = 1;
constexpr int kBosId = 2;
constexpr int kEosId = 3;
constexpr int kFirstWordId = 4;

}  // namespace gloss::text
