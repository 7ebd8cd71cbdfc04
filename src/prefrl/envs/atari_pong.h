// prefrl's Pong (atari_pong.cc): the layout of its state and the constants its tests check.
#pragma once

namespace prefrl::pong {

constexpr int kSub = 16;                       // positions are in 1/16 pixel
constexpr int kTopWall = 24, kPlayTop = 34;    // rows 24-33: top wall; the play area starts at row 34
constexpr int kPlayBottom = 194;               // rows 194-209: bottom wall
constexpr int kPaddleH = 16, kPaddleW = 4;
constexpr int kOppX = 16, kAgentX = 140;       // the paddles' left columns
constexpr int kBallW = 2, kBallH = 4;
constexpr int kWinScore = 21;
constexpr int kServePause = 60;                // frames between a point and the next serve
constexpr int kAgentSpeed = 3 * kSub;          // sub-pixels per frame while a direction is held
constexpr int kOppSpeed = 2 * kSub;            // the opponent's tracking speed
constexpr int kBallVx0 = 24, kBallVxStep = 2, kBallVxMax = 48;  // across, sub-pixels per frame
constexpr int kBallVyMax = 56;                 // vertical speed off the paddle's very edge

// The state, in order (every value an integer, so exact as a double).
enum StateIndex : int {
  kBallX, kBallY, kBallVx, kBallVy,  // sub-pixels; the ball's top-left corner
  kAgentY, kOppY,                    // the paddles' top rows, sub-pixels
  kAgentScore, kOppScore,
  kPause,                            // frames until the serve (0: in play)
  kServeDir,                         // +1 the serve goes towards the player (right), -1 towards the opponent
  kAim,                              // the opponent's aim offset this rally, sub-pixels
  kRng,                              // the game's 32-bit xorshift state (never 0)
  kFrame,                            // frames since the power-on
  kOver,                             // 1 once someone reached 21
  kStateSize
};

}  // namespace prefrl::pong
