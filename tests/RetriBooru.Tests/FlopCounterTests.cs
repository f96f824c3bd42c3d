using RetriBooru.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class FlopCounterTests
{
    [Fact]
    public void Convolutions_linears_and_attention_matmuls_are_counted_from_the_shapes_they_run_at()
    {
        Torch.Load();
        using var conv = nn.Conv2d(3, 5, 3, padding: 1);
        using var attention = new Attention(queryDim: 8, crossAttentionDim: null, heads: 2, dimHead: 4);
        foreach (var p in conv.parameters()) p.requires_grad = false;
        var count = FlopCounter.Count([conv, attention], () =>
        {
            using var scope = NewDisposeScope();
            conv.call(zeros(1, 3, 4, 4));
            attention.Forward(zeros(2, 6, 8));
        });
        // Frozen conv: 1 x 5 x 4 x 4 outputs, 3 x 3 x 3 multiply-adds each.
        Assert.Equal(2.0 * 80 * 27, count.FrozenForward);
        // Trainable attention: four 8 -> 8 projections over 2 x 6 tokens, plus QK^T and AV: 4 x 2 x 6 x 6 x 8.
        Assert.Equal(4 * (2.0 * 2 * 6 * 8 * 8) + 4.0 * 2 * 6 * 6 * 8, count.TrainableForward);
        Assert.Equal((1, 4, 1), (count.Convolutions, count.Linears, count.Attentions));
        Assert.Equal(3 * count.TrainableForward + count.FrozenForward, count.TrainingStep);
        // A module reached from two roots is counted once; hooks are removed afterwards.
        var again = FlopCounter.Count([attention, attention], () => { using var scope = NewDisposeScope(); attention.Forward(zeros(2, 6, 8)); });
        Assert.Equal(count.TrainableForward, again.TrainableForward);
        var none = FlopCounter.Count([], () => { using var scope = NewDisposeScope(); attention.Forward(zeros(2, 6, 8)); });
        Assert.Equal(0, none.Forward);
        // A convolution computed by MatmulConvolution (no forward hook runs) counts as the module itself would.
        var byMatmul = FlopCounter.Count([conv], () => { using var scope = NewDisposeScope(); MatmulConvolution.Conv3x3(conv, zeros(1, 3, 4, 4)); });
        Assert.Equal((2.0 * 80 * 27, 1), (byMatmul.FrozenForward, byMatmul.Convolutions));
        var outside = FlopCounter.Count([attention], () => { using var scope = NewDisposeScope(); MatmulConvolution.Conv3x3(conv, zeros(1, 3, 4, 4)); });
        Assert.Equal(0, outside.Forward);
    }
}
